import BoxstackCore
import Foundation
import TestSupport
import Testing

/// A team publishes a box once and everyone else fetches it: `boxes push` to a real registry, then
/// `boxes fetch` through an `oci://` catalog source into an empty cache, and a boot of what arrived.
@Suite(.serialized) struct BoxPublishingTests {
    @Test func aPushedBoxIsFetchedThroughOCIByteForByteAndBoots() throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let reference = "\(registry.address)/boxes/debian:bookworm"
        let publisher = try BoxstackCLI("box-push")
        let pushed = try publisher.run(["boxes", "push", "debian", reference])
        #expect(pushed.status == .terminated(code: 0), "\(pushed.combined)")
        #expect(pushed.output.contains("catalog source: oci://\(reference)"), "\(pushed.output)")

        // Pushing the same box again sends nothing: the registry has every file.
        let again = try publisher.run(["boxes", "push", "--json", "debian", reference])
        #expect(again.status == .terminated(code: 0), "\(again.combined)")
        let result = try JSONSerialization.jsonObject(with: Data(again.output.utf8)) as? [String: Any]
        #expect(result?["uploadedBytes"] as? Int == 0, "\(again.output)")
        #expect((result?["skippedFiles"] as? [String])?.count == 3, "\(again.output)")

        // Someone else: a catalog whose entry points at the registry, and an empty cache.
        let entry = try BoxstackCLI.catalogEntry(name: "team-debian")
            .replacingOccurrences(
                of: #"source: file://[^\n]*"#, with: "source: oci://\(reference)", options: .regularExpression)
        let consumer = try BoxstackCLI("box-fetch-oci", extraCatalog: entry)
        var environment = consumer.environment
        environment["BOXSTACK_CACHE_DIR"] = consumer.workspace.file("cache")
        let fetch = try Subprocess.run(
            [BoxstackCLI.binary, "boxes", "fetch", "team-debian"], environment: environment, currentDirectory: consumer.workspace.path)
        #expect(fetch.status == .terminated(code: 0), "\(fetch.combined)")
        #expect(fetch.output.contains("downloaded"), "\(fetch.output)")

        let original = try TestBox.image()
        let fetchedDirectory = consumer.workspace.file("cache/boxes/team-debian/x86_64")
        for path in [original.kernel, original.initrd, original.disk] {
            let name = (path as NSString).lastPathComponent
            let resolved =
                (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map {
                    $0.hasPrefix("/") ? $0 : (path as NSString).deletingLastPathComponent + "/" + $0
                } ?? path
            #expect(
                try ContentDigest.ofFile(fetchedDirectory + "/" + name).digest == ContentDigest.ofFile(resolved).digest,
                "\(name) arrived changed")
        }

        // The fetched box boots and its agent answers, without touching the registry again.
        registry.stop()
        let boot = try Subprocess.run(
            [BoxstackCLI.binary, "--cold", "--no-update-check", "boxes", "run", "team-debian"], environment: environment,
            currentDirectory: consumer.workspace.path)
        #expect(boot.status == .terminated(code: 0), "\(boot.combined)")
        #expect(boot.output.contains("agent-version="), "\(boot.output)")
    }
}
