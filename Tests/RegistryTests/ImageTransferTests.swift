import BoxstackCore
import Foundation
import OCI
import Registry
import TestSupport
import Testing

/// A registry in memory: what `ImageTransfer` sends and asks for, recorded, so the transfer's own
/// logic (what it skips, what it stores, in which order) is checked without a network.
final class MemoryRegistry: RegistryAccess, @unchecked Sendable {
    let registry = "127.0.0.1:5000"
    private let lock = NSLock()
    private(set) var blobs: [ContentDigest: Data] = [:]
    private(set) var manifests: [String: (data: Data, mediaType: String)] = [:]
    private(set) var uploads: [ContentDigest] = []
    private(set) var downloads: [ContentDigest] = []

    func manifest(repository: String, reference: String, platform: Platform?) async throws -> (
        data: Data, mediaType: String, digest: ContentDigest
    ) {
        guard let stored = lock.withLock({ manifests["\(repository):\(reference)"] }) else {
            throw BoxstackError(.notFound, "no manifest \(repository):\(reference)")
        }
        return (stored.data, stored.mediaType, ContentDigest.of(stored.data))
    }

    func putManifest(repository: String, reference: String, data: Data, mediaType: String) async throws -> ContentDigest {
        lock.withLock { manifests["\(repository):\(reference)"] = (data, mediaType) }
        return ContentDigest.of(data)
    }

    func downloadBlob(
        repository: String, digest: ContentDigest, size: Int64?, to path: String, progress: (@Sendable (Int64) -> Void)?
    ) async throws {
        guard let data = lock.withLock({ blobs[digest] }) else { throw BoxstackError(.notFound, "no blob \(digest)") }
        lock.withLock { downloads.append(digest) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    func uploadBlob(
        repository: String, digest: ContentDigest, size: Int64, from path: String, mountFrom: String?,
        progress: (@Sendable (Int64) -> Void)?
    ) async throws -> BlobUploadResult {
        if lock.withLock({ blobs[digest] != nil }) { return .alreadyPresent }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard ContentDigest.of(data) == digest else { throw BoxstackError(.checksumMismatch, "upload of \(digest) does not match") }
        lock.withLock {
            blobs[digest] = data
            uploads.append(digest)
        }
        return .uploaded
    }
}

@Suite struct ImageTransferTests {
    let directory: TemporaryDirectory
    let registry = MemoryRegistry()

    init() throws {
        directory = try TemporaryDirectory("transfer")
    }

    private func storeImage(_ path: String, _ content: String) throws -> OCILayout {
        try RawImage.store([[RawTar.Member("file", content: content)]], at: path, tag: "v1", scratch: directory.path)
        return try OCILayout(opening: path)
    }

    @Test func aPushedImagePullsBackIdenticalAndBlobsAreSentOnce() async throws {
        let source = try storeImage(directory.file("source"), "hello")
        let transfer = ImageTransfer(client: registry, showProgress: false)
        let reference = try ImageReference(parsing: "127.0.0.1:5000/team/image:v1")
        let pushed = try await transfer.push(layout: source, tag: "v1", to: reference)
        #expect(registry.uploads.count == 2)  // the layer and the config
        #expect(pushed == (try #require(try source.descriptor(tag: "v1"))).digest)

        try await transfer.push(layout: source, tag: "v1", to: reference)
        #expect(registry.uploads.count == 2, "a second push sent blobs again")

        let target = try OCILayout.create(at: directory.file("target"))
        let pulled = try await transfer.pull(reference: reference, into: target, tag: "copy")
        #expect(pulled.digest == pushed)
        #expect(try target.readBlob(pushed) == (try source.readBlob(pushed)))
        #expect(registry.downloads.count == 2)

        _ = try await transfer.pull(reference: reference, into: target, tag: "again")
        #expect(registry.downloads.count == 2, "blobs the layout has were downloaded again")
    }

    @Test func aPullThatFailsLeavesTheLayoutsTagsAsTheyWere() async throws {
        let source = try storeImage(directory.file("source"), "hello")
        let transfer = ImageTransfer(client: registry, showProgress: false)
        let reference = try ImageReference(parsing: "127.0.0.1:5000/team/image:v1")
        try await transfer.push(layout: source, tag: "v1", to: reference)
        let missing = try ImageReference(parsing: "127.0.0.1:5000/team/other:v1")
        let target = try OCILayout.create(at: directory.file("target"))
        await #expect(throws: BoxstackError.self) { try await transfer.pull(reference: missing, into: target, tag: "copy") }
        #expect(try target.tags().isEmpty)
    }
}
