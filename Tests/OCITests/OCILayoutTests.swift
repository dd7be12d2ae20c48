import BoxstackCore
import Foundation
import OCI
import TestSupport
import Testing

/// The OCI image layout on disk: blobs by digest, tags in index.json, garbage collection, and the
/// limits a hostile layout meets.
@Suite struct OCILayoutTests {
    let directory: TemporaryDirectory
    let layout: OCILayout

    init() throws {
        directory = try TemporaryDirectory("oci")
        layout = try OCILayout.create(at: directory.file("layout"))
    }

    private func image(_ content: String) throws -> Descriptor {
        let layer = try layout.writeBlob(Data(content.utf8), mediaType: MediaType.layerTar)
        var config = ImageConfig(architecture: "amd64")
        config.rootfs.diffIDs = [layer.digest]
        let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
        return try layout.writeBlob(OCIJSON.encode(Manifest(config: configBlob, layers: [layer])), mediaType: MediaType.imageManifest)
    }

    @Test func aNewLayoutIsWhatOtherToolsRead() throws {
        let marker = try String(contentsOfFile: layout.path + "/oci-layout", encoding: .utf8)
        #expect(marker.contains("\"imageLayoutVersion\":\"1.0.0\""))
        #expect(try layout.index().manifests.isEmpty)
        #expect(OCILayout.exists(at: layout.path))
    }

    @Test func blobsAreStoredByTheirDigest() throws {
        let descriptor = try layout.writeBlob(Data("hello".utf8), mediaType: "application/octet-stream")
        #expect(descriptor.digest == ContentDigest.of(Data("hello".utf8)))
        #expect(descriptor.size == 5)
        #expect(try layout.readBlob(descriptor.digest) == Data("hello".utf8))
        #expect(layout.blobSize(descriptor.digest) == 5)
    }

    @Test func anImportedBlobWithAnotherDigestIsRefused() throws {
        let file = directory.file("blob")
        try Data("content".utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: BoxstackError.self) {
            try layout.importBlob(fromFile: file, expectedDigest: ContentDigest.of(Data("other".utf8)))
        }
        #expect(!layout.hasBlob(ContentDigest.of(Data("content".utf8))))
    }

    @Test func aCorruptJSONBlobIsRefusedWhenRead() throws {
        let manifest = try image("layer")
        try Data("{}".utf8).write(to: URL(fileURLWithPath: layout.blobPath(manifest.digest)))
        let error = #expect(throws: BoxstackError.self) { try layout.readJSON(Manifest.self, manifest.digest) }
        #expect(error?.code == .checksumMismatch)
    }

    @Test func tagsMoveAndGarbageCollectionKeepsWhatIsReachable() throws {
        let first = try image("one")
        let second = try image("two")
        try layout.setTag("v1", to: first)
        try layout.setTag("v2", to: second)
        try layout.setTag("v1", to: second)
        #expect(try layout.tags().sorted() == ["v1", "v2"])
        #expect(try layout.descriptor(tag: "v1")?.digest == second.digest)
        let collected = try layout.garbageCollect()
        #expect(collected.blobs == 3)
        #expect(!layout.hasBlob(first.digest))
        #expect(layout.hasBlob(second.digest))
        #expect(try layout.removeTag("v2"))
        #expect(try !layout.removeTag("v2"))
    }

    @Test func nestedIndexesAreFollowedOnlyToTheLimit() throws {
        var descriptor = try image("deep")
        for _ in 0..<(ImageIndex.maximumNestingDepth + 2) {
            var child = descriptor
            child.platform = Platform(architecture: "amd64", os: "linux")
            descriptor = try layout.writeBlob(OCIJSON.encode(ImageIndex(manifests: [child])), mediaType: MediaType.imageIndex)
        }
        try layout.setTag("deep", to: descriptor)
        let error = #expect(throws: BoxstackError.self) { try layout.manifest(tag: "deep") }
        #expect(error?.code == .invalidData)
    }
}
