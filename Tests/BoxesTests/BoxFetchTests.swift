import Boxes
import BoxstackCore
import Foundation
import TestSupport
import Testing

@Suite("Box fetch, update and cache against a real HTTP server")
struct BoxFetchTests {
    @Test func fetchDownloadsAndVerifiesEveryFile() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(Set(result.downloadedFiles) == [BoxFixture.kernel, BoxFixture.initrd, BoxFixture.disk])
        #expect(try contents(result.box.disk) == fixture.published(BoxFixture.disk))
        #expect(try contents(result.box.kernel) == fixture.published(BoxFixture.kernel))
        #expect(try contents(result.box.initrd) == fixture.published(BoxFixture.initrd))
        #expect(result.box.cmdline == ["root=/dev/vda", "rw"])
        #expect(result.box.console == "ttyS0")
        #expect(result.box.memory == 1 << 30)
        let diskDigest = ContentDigest.of(try fixture.published(BoxFixture.disk))
        #expect(result.box.diskDigest == diskDigest)
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .cached(size: result.box.size, digest: diskDigest))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: result.box.directory).filter { $0.hasSuffix(".part") }
        #expect(leftovers.isEmpty)
    }

    @Test func corruptedDownloadFailsAndKeepsTheOldBoxUsable() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        let old = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box
        let oldDisk = try contents(old.disk)

        try fixture.publish(BoxFixture.disk, randomBytes(4 << 20))
        try fixture.server.inject([("box/\(BoxFixture.disk)", .corrupt(offset: 1000))])
        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        }

        #expect(error.code == .checksumMismatch)
        #expect(error.message.contains(BoxFixture.disk) && error.message.contains("unchanged"))
        #expect(try contents(old.disk) == oldDisk)
        let usable = try await fixture.cache.ensure(box, arch: "x86_64", checkForUpdates: false, progress: false)
        #expect(usable.diskDigest == ContentDigest.of(oldDisk))
        #expect(!FileManager.default.fileExists(atPath: old.disk + ".part"))
    }

    @Test func httpErrorFailsWithOneSentenceAndKeepsTheOldBox() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        let old = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box
        let oldDisk = try contents(old.disk)

        try fixture.publish(BoxFixture.disk, randomBytes(4 << 20))
        try fixture.server.inject([("box/\(BoxFixture.disk)", .error(status: 500))])
        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        }

        #expect(error.code == .network)
        #expect(error.message.contains("HTTP 500"))
        #expect(try contents(old.disk) == oldDisk)
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .cached(size: old.size, digest: old.diskDigest))
    }

    @Test(arguments: [HTTPFixture.Fault.drop(after: 1 << 20), .truncate(after: 1 << 20)])
    func brokenOffDownloadResumesWithARangeRequest(fault: HTTPFixture.Fault) async throws {
        let fixture = try BoxFixture(diskSize: 4 << 20)
        let box = try fixture.box()
        try fixture.server.inject([("box/\(BoxFixture.disk)", fault)])

        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        }
        #expect(error.code == .network)
        #expect(error.message.contains("resume"))
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .notFetched)

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(try contents(result.box.disk) == fixture.published(BoxFixture.disk))
        let diskRequests = try fixture.server.requests().filter { $0.path.hasSuffix(BoxFixture.disk) }
        let resumed = try #require(diskRequests.last)
        #expect(resumed.status == 206)
        let start = try #require(resumed.range.flatMap { Int($0.dropFirst("bytes=".count).dropLast()) })
        #expect(start > 0 && start <= 1 << 20)
        #expect(diskRequests.reduce(0) { $0 + $1.bytes } == 4 << 20 + (1 << 20) - Int64(start))
    }

    @Test func aServerWithoutRangesSendsTheWholeFileAndTheKeptBytesAreDropped() async throws {
        let fixture = try BoxFixture(diskSize: 4 << 20)
        let box = try fixture.box()
        let disk = "box/\(BoxFixture.disk)"
        try fixture.server.inject([(disk, .drop(after: 1 << 20)), (disk, .noRange)])
        _ = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        }

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(try contents(result.box.disk) == fixture.published(BoxFixture.disk))
        let retry = try #require(try fixture.server.requests().last { $0.path.hasSuffix(BoxFixture.disk) })
        #expect(retry.range != nil)
        #expect(retry.status == 200)
    }

    @Test func unchangedUpdateTransfersOnlyChecksumFiles() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        _ = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        try fixture.server.clearLog()

        // Its time is measured by Scripts/bench/box-fetch, not asserted here.
        let results = try await fixture.cache.update([box], progress: false)

        #expect(results.map(\.downloadedFiles) == [[]])
        #expect(results.map(\.downloadedBytes) == [0])
        #expect(try fixture.server.boxBytesServed() == 0)
        #expect(try fixture.server.requests().allSatisfy { $0.path.hasSuffix(".sha256") })
    }

    @Test func oneChangedFileIsTheOnlyOneDownloaded() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        let old = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box
        let newInitrd = randomBytes(200 << 10)
        try fixture.publish(BoxFixture.initrd, newInitrd)
        try fixture.server.clearLog()

        let status = try await fixture.cache.checkForUpdates(box, arch: "x86_64")
        #expect(status == .updateAvailable(size: old.size, digest: old.diskDigest, changedFiles: [BoxFixture.initrd]))
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == status)
        #expect(try fixture.server.boxBytesServed() == 0)

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(result.downloadedFiles == [BoxFixture.initrd])
        #expect(try fixture.boxFilesServed() == [BoxFixture.initrd])
        #expect(try contents(result.box.initrd) == newInitrd)
        #expect(result.box.diskDigest == old.diskDigest)
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .cached(size: result.box.size, digest: old.diskDigest))
    }

    @Test func cachedDiskIsTrustedByItsRecordedDigestNotReHashed() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        let cached = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box
        // Same size, different bytes: only a re-hash could notice, and a normal run must not re-hash.
        try randomBytes(4 << 20).write(to: URL(fileURLWithPath: cached.disk))
        try fixture.server.clearLog()

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(result.downloadedFiles.isEmpty)
        #expect(try fixture.server.boxBytesServed() == 0)
    }

    @Test func concurrentFetchesDownloadEachFileOnce() async throws {
        let fixture = try BoxFixture(diskSize: 8 << 20)
        let box = try fixture.box()
        let directory = fixture.cache.directory

        let results = try await withThrowingTaskGroup(of: FetchResult.self) { group in
            for _ in 0..<2 {
                group.addTask { try await BoxCache(directory: directory).fetch(box, arch: "x86_64", progress: false) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }

        #expect(results.count == 2)
        #expect(results.map(\.downloadedFiles.count).sorted() == [0, 3])
        #expect(try fixture.boxFilesServed().sorted() == [BoxFixture.initrd, BoxFixture.kernel, BoxFixture.disk].sorted())
        for result in results {
            #expect(try contents(result.box.disk) == fixture.published(BoxFixture.disk))
        }
    }

    @Test func fileSourceFetchesAndVerifies() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box(source: "file://\(fixture.served)/box/")

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(try contents(result.box.disk) == fixture.published(BoxFixture.disk))
        #expect(try fixture.server.requests().isEmpty)
        let again = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        #expect(again.downloadedFiles.isEmpty)
    }

    @Test func relativeSourceIsADirectoryBesideTheCatalog() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box(source: "served/box/")
        #expect(try box.architecture("x86_64").source == .directory(fixture.served + "/box"))

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        #expect(try contents(result.box.kernel) == fixture.published(BoxFixture.kernel))
    }

    @Test func corruptedLocalFileIsRejected() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box(source: "served/box/")
        try randomBytes(64 << 10).write(to: URL(fileURLWithPath: "\(fixture.served)/box/\(BoxFixture.kernel)"))

        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        }
        #expect(error.code == .checksumMismatch)
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .notFetched)
    }

    @Test func ensureUsesTheCachedBoxWhenTheSourceIsUnreachable() async throws {
        var fixture: BoxFixture? = try BoxFixture()
        let cache = try #require(fixture?.cache)
        let box = try #require(try fixture?.box())
        // Keeps the cache directory alive after the fixture (and with it the server) is gone.
        let temporary = try #require(fixture?.temporary)
        let cached = try await cache.fetch(box, arch: "x86_64", progress: false).box
        fixture = nil

        let offline = try await cache.ensure(box, arch: "x86_64", checkForUpdates: false, progress: false)
        #expect(offline == cached)
        let checked = try await cache.ensure(box, arch: "x86_64", checkForUpdates: true, progress: false)
        #expect(checked.disk == cached.disk)
        #expect(checked.notice?.contains("cached box is used") == true)
        withExtendedLifetime(temporary) {}
    }

    @Test func removeDeletesTheBox() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        let cached = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box

        #expect(try await fixture.cache.remove("test"))
        #expect(!FileManager.default.fileExists(atPath: cached.directory))
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .notFetched)
        #expect(try await fixture.cache.remove("test") == false)
    }

    @Test func missingChecksumFileIsAClearError() async throws {
        let fixture = try BoxFixture()
        let box = try fixture.box()
        try FileManager.default.removeItem(atPath: "\(fixture.served)/box/\(BoxFixture.disk).sha256")

        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        }
        #expect(error.message.contains("\(BoxFixture.disk).sha256 answered HTTP 404"))
    }
}
