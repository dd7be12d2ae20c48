import BoxstackCore
import Foundation
import OCI
import Registry
import TestSupport
import Testing

/// Image indexes nested in indexes are followed only `ImageIndex.maximumNestingDepth` deep, by pull
/// and push (against the fault registry on 127.0.0.1) and by the layout itself.
@Suite(.timeLimit(.minutes(1))) struct IndexNestingTests {
    @Test func indexesTenDeepAreRefusedNamingTheIndexTooDeep() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "image")
        let chain = try TestImages.nestIndexes(in: served, image: "image", depth: 10, tag: "deep")
        let tooDeep = chain[ImageIndex.maximumNestingDepth].digest
        let registry = try FaultRegistry(layout: served.path)

        let target = try OCILayout.create(at: directory.file("target"))
        let pullError = await #expect(throws: BoxstackError.self) {
            try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false)
                    .pull(reference: ImageReference(parsing: "\(registry.address)/app:deep"), into: target, tag: "deep")
            }
        }
        #expect(pullError?.code == .invalidData)
        #expect(
            pullError?.message.contains("the image index \(tooDeep) in \(registry.address)/app is nested below 4 other indexes") == true,
            "\(pullError?.message ?? "")")
        #expect(try target.tags().isEmpty)

        let pushError = await #expect(throws: BoxstackError.self) {
            try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false)
                    .push(layout: served, tag: "deep", to: ImageReference(parsing: "\(registry.address)/copy:deep"))
            }
        }
        #expect(pushError?.code == .invalidData)
        #expect(pushError?.message.contains("the image index \(tooDeep) in \(served.path)") == true, "\(pushError?.message ?? "")")
        #expect(try registry.requests().allSatisfy { $0.method == "GET" }, "the push sent nothing")

        let layoutError = #expect(throws: BoxstackError.self) { try served.manifest(tag: "deep") }
        #expect(layoutError?.code == .invalidData)
        #expect(layoutError?.message.contains("\(tooDeep)") == true, "\(layoutError?.message ?? "")")
    }

    @Test func indexesAsDeepAsTheLimitStillWork() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "image")
        try TestImages.nestIndexes(in: served, image: "image", depth: ImageIndex.maximumNestingDepth, tag: "nested")
        let image = try #require(try served.descriptor(tag: "image"))
        #expect(try served.manifest(tag: "nested")?.descriptor.digest == image.digest)

        let registry = try FaultRegistry(layout: served.path)
        let target = try OCILayout.create(at: directory.file("target"))
        try await RegistryClient.withClient(registry: registry.address) { client in
            let transfer = ImageTransfer(client: client, showProgress: false)
            let pulled = try await transfer.pull(
                reference: ImageReference(parsing: "\(registry.address)/app:nested"), into: target, tag: "nested")
            #expect(pulled.digest == image.digest)
            let pushed = try await transfer.push(
                layout: served, tag: "nested", to: ImageReference(parsing: "\(registry.address)/copy:nested"))
            #expect(pushed == (try served.descriptor(tag: "nested"))?.digest)
        }
    }
}
