import Boxes
import BoxstackCore
import Foundation
import OCI
import Registry
import TestSupport
import Testing

/// A box published as an OCI artifact in a real docker-registry on 127.0.0.1 (one blob per box file,
/// named by its title annotation), a catalog whose source is `oci://127.0.0.1:PORT/boxes/debian:1`, and
/// an empty cache, all in a fresh temporary directory.
final class OCIBoxFixture: @unchecked Sendable {
    let temporary: TemporaryDirectory
    let registry: RegistryServer
    let cache: BoxCache

    static let repository = "boxes/debian"
    static let tag = "1"
    static let kernel = "debian-box.x86_64.kernel"
    static let initrd = "debian-box.x86_64.initrd"
    static let disk = "debian-box.x86_64.qcow2"

    /// The files the tag currently publishes, by name.
    private(set) var published: [String: Data] = [:]

    init() throws {
        temporary = try TemporaryDirectory("boxes-oci")
        registry = try RegistryServer()
        cache = BoxCache(directory: temporary.file("cache"))
    }

    /// A fresh kernel (1 MiB), initrd (2 MiB) and disk (4 MiB) of random bytes.
    static func randomBox() -> [String: Data] {
        [kernel: randomBytes(1 << 20), initrd: randomBytes(2 << 20), disk: randomBytes(4 << 20)]
    }

    /// Pushes `files` as the artifact tagged `tag` the way `boxes push` does (`BoxArtifact`). Returns the
    /// manifest and its digest.
    @discardableResult
    func publish(_ files: [String: Data], tag: String = OCIBoxFixture.tag) async throws -> (manifest: Manifest, digest: ContentDigest) {
        let staging = temporary.file("staging-\(UUID().uuidString.prefix(8))")
        try FileManager.default.makeDirectory(staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let roles: [String: BoxFileRole] = [Self.kernel: .kernel, Self.initrd: .initrd, Self.disk: .disk]
        var artifactFiles: [BoxArtifact.File] = []
        for name in files.keys.sorted() {
            let bytes = files[name] ?? Data()
            try bytes.write(to: URL(fileURLWithPath: "\(staging)/\(name)"))
            artifactFiles.append(
                BoxArtifact.File(role: try #require(roles[name]), path: "\(staging)/\(name)", digest: .of(bytes), size: Int64(bytes.count)))
        }
        let result = try await RegistryClient.withClient(registry: registry.address) { client in
            try await BoxArtifact.push(
                name: "debian", arch: "x86_64", files: artifactFiles, client: client, repository: Self.repository, tag: tag,
                showProgress: false)
        }
        published = files
        return (BoxArtifact.manifest(name: "debian", arch: "x86_64", files: artifactFiles), result.digest)
    }

    /// The catalog entry `debian` whose x86_64 source is `source` (the artifact's tag by default).
    func box(source: String? = nil) throws -> BoxDefinition {
        let path = temporary.file("catalog.yaml")
        let yaml = """
            boxes:
              - name: debian
                description: debian box from a registry
                memory: 1G
                cpus: 1
                console: ttyS0
                arch:
                  x86_64:
                    source: \(source ?? "oci://\(registry.address)/\(Self.repository):\(Self.tag)")
                    kernel: \(Self.kernel)
                    initrd: \(Self.initrd)
                    disk: \(Self.disk)
                    cmdline: [root=/dev/vda, rw]
            """
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        return try BoxCatalog.parse(file: path)[0]
    }

    /// Digests of the blobs the registry sent a body for (GET), in the order its log recorded them.
    func blobsServed() -> [ContentDigest] {
        registry.log.split(whereSeparator: \.isNewline).compactMap { line -> ContentDigest? in
            guard line.contains("response completed"), line.contains("http.request.method=GET"),
                let range = line.range(of: "/v2/\(Self.repository)/blobs/sha256:")
            else { return nil }
            let hex = line[range.upperBound...].prefix(64)
            return ContentDigest("sha256:" + hex)
        }
    }
}

@Suite("Box fetch and update from an OCI artifact in a real docker-registry")
struct OCISourceTests {
    @Test func fetchDownloadsAndVerifiesEveryLayer() async throws {
        let fixture = try OCIBoxFixture()
        let files = OCIBoxFixture.randomBox()
        try await fixture.publish(files)
        let box = try fixture.box()

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(Set(result.downloadedFiles) == [OCIBoxFixture.kernel, OCIBoxFixture.initrd, OCIBoxFixture.disk])
        #expect(result.downloadedBytes == Int64(files.values.map(\.count).reduce(0, +)))
        #expect(try contents(result.box.kernel) == files[OCIBoxFixture.kernel])
        #expect(try contents(result.box.initrd) == files[OCIBoxFixture.initrd])
        #expect(try contents(result.box.disk) == files[OCIBoxFixture.disk])
        let diskDigest = ContentDigest.of(try #require(files[OCIBoxFixture.disk]))
        #expect(result.box.diskDigest == diskDigest)
        #expect(result.box.cmdline == ["root=/dev/vda", "rw"])
        #expect(result.box.console == "ttyS0")
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .cached(size: result.box.size, digest: diskDigest))
        #expect(Set(fixture.blobsServed()) == Set(files.values.map { ContentDigest.of($0) }))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: result.box.directory)
            .filter { $0.hasPrefix(".") || $0.contains(".part") }
        #expect(leftovers.isEmpty)
    }

    @Test func unchangedUpdateDownloadsNothing() async throws {
        let fixture = try OCIBoxFixture()
        try await fixture.publish(OCIBoxFixture.randomBox())
        let box = try fixture.box()
        let first = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)
        let servedBefore = fixture.blobsServed()

        let results = try await fixture.cache.update([box], progress: false)

        let result = try #require(results.first)
        #expect(results.count == 1)
        #expect(result.downloadedFiles.isEmpty)
        #expect(result.downloadedBytes == 0)
        #expect(result.box == first.box)
        #expect(fixture.blobsServed() == servedBefore)
    }

    @Test func newTagContentWithAnotherInitrdDownloadsOnlyTheInitrd() async throws {
        let fixture = try OCIBoxFixture()
        var files = OCIBoxFixture.randomBox()
        try await fixture.publish(files)
        let box = try fixture.box()
        let old = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box
        let servedBefore = fixture.blobsServed().count

        let newInitrd = randomBytes(3 << 20)
        files[OCIBoxFixture.initrd] = newInitrd
        try await fixture.publish(files)
        #expect(
            try await fixture.cache.checkForUpdates(box, arch: "x86_64")
                == .updateAvailable(size: old.size, digest: old.diskDigest, changedFiles: [OCIBoxFixture.initrd]))
        let result = try #require(try await fixture.cache.update([box], progress: false).first)

        #expect(result.downloadedFiles == [OCIBoxFixture.initrd])
        #expect(result.downloadedBytes == Int64(newInitrd.count))
        #expect(Array(fixture.blobsServed().dropFirst(servedBefore)) == [ContentDigest.of(newInitrd)])
        #expect(try contents(result.box.initrd) == newInitrd)
        #expect(try contents(result.box.kernel) == files[OCIBoxFixture.kernel])
        #expect(try contents(result.box.disk) == files[OCIBoxFixture.disk])
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .cached(size: result.box.size, digest: old.diskDigest))
    }

    @Test func corruptBlobInTheRegistryFailsAndKeepsTheCachedBox() async throws {
        let fixture = try OCIBoxFixture()
        var files = OCIBoxFixture.randomBox()
        try await fixture.publish(files)
        let box = try fixture.box()
        let old = try await fixture.cache.fetch(box, arch: "x86_64", progress: false).box
        let oldInitrd = try contents(old.initrd)

        // The manifest names the new initrd's digest, but the registry's stored bytes no longer match it.
        let newInitrd = randomBytes(2 << 20)
        files[OCIBoxFixture.initrd] = newInitrd
        try await fixture.publish(files)
        let blob = fixture.registry.blobDataPath(.of(newInitrd))
        var corrupted = newInitrd
        corrupted[1000] ^= 0xFF
        try corrupted.write(to: URL(fileURLWithPath: blob))

        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.update([box], progress: false)
        }

        #expect(error.code == .checksumMismatch)
        #expect(error.message.contains(OCIBoxFixture.initrd))
        #expect(error.message.contains(ContentDigest.of(newInitrd).description))
        #expect(error.message.contains("unchanged"))
        #expect(try contents(old.initrd) == oldInitrd)
        #expect(try fixture.cache.status(of: box, arch: "x86_64") == .cached(size: old.size, digest: old.diskDigest))
        let usable = try await fixture.cache.ensure(box, arch: "x86_64", checkForUpdates: false, progress: false)
        #expect(usable == old)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: old.directory)
            .filter { $0.hasPrefix(".") || $0.contains(".part") }
        #expect(leftovers.isEmpty)

        // Once the registry holds the right bytes again, the next update gets them.
        try newInitrd.write(to: URL(fileURLWithPath: blob))
        let repaired = try #require(try await fixture.cache.update([box], progress: false).first)
        #expect(repaired.downloadedFiles == [OCIBoxFixture.initrd])
        #expect(try contents(repaired.box.initrd) == newInitrd)
    }

    /// A second push of the same box sends no file and names the same manifest.
    @Test func pushingTheSameBoxAgainSkipsEveryFileAndKeepsTheDigest() async throws {
        let fixture = try OCIBoxFixture()
        let files = OCIBoxFixture.randomBox()
        let first = try await fixture.publish(files)
        let staging = fixture.temporary.file("again")
        try FileManager.default.makeDirectory(staging)
        let artifactFiles = try [(BoxFileRole.kernel, OCIBoxFixture.kernel), (.initrd, OCIBoxFixture.initrd), (.disk, OCIBoxFixture.disk)]
            .map { role, name in
                let bytes = try #require(files[name])
                try bytes.write(to: URL(fileURLWithPath: "\(staging)/\(name)"))
                return BoxArtifact.File(role: role, path: "\(staging)/\(name)", digest: .of(bytes), size: Int64(bytes.count))
            }
        let again = try await RegistryClient.withClient(registry: fixture.registry.address) { client in
            try await BoxArtifact.push(
                name: "debian", arch: "x86_64", files: artifactFiles, client: client, repository: OCIBoxFixture.repository,
                tag: "2", showProgress: false)
        }
        #expect(again.uploadedBytes == 0)
        #expect(Set(again.skippedFiles) == [OCIBoxFixture.kernel, OCIBoxFixture.initrd, OCIBoxFixture.disk])
        #expect(again.digest == first.digest)
        #expect(first.manifest.artifactType == BoxArtifact.artifactType)
    }

    @Test func artifactWithoutATitledLayerIsRejectedByName() async throws {
        let fixture = try OCIBoxFixture()
        var files = OCIBoxFixture.randomBox()
        files[OCIBoxFixture.disk] = nil
        try await fixture.publish(files)

        let error = try await #require(throws: BoxstackError.self) {
            try await fixture.cache.fetch(fixture.box(), arch: "x86_64", progress: false)
        }

        #expect(error.code == .notFound)
        #expect(error.message.contains(OCIBoxFixture.disk) && error.message.contains(AnnotationKey.title))
        #expect(try fixture.cache.status(of: fixture.box(), arch: "x86_64") == .notFetched)
    }

    @Test func digestReferencePinsTheArtifact() async throws {
        let fixture = try OCIBoxFixture()
        let files = OCIBoxFixture.randomBox()
        let pinned = try await fixture.publish(files).digest
        // Moving the tag on must not affect a catalog that names the manifest by digest.
        try await fixture.publish(OCIBoxFixture.randomBox())
        let box = try fixture.box(source: "oci://\(fixture.registry.address)/\(OCIBoxFixture.repository)@\(pinned)")

        let result = try await fixture.cache.fetch(box, arch: "x86_64", progress: false)

        #expect(try contents(result.box.disk) == files[OCIBoxFixture.disk])
        #expect(try contents(result.box.initrd) == files[OCIBoxFixture.initrd])
    }
}
