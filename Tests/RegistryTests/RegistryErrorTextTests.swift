import BoxstackCore
import Foundation
import OCI
import Registry
import TestSupport
import Testing

/// Text a registry sends reaches error messages with its control characters escaped, so it cannot
/// retitle or clear the user's terminal.
@Suite(.timeLimit(.minutes(1))) struct RegistryErrorTextTests {
    static let escaped = #"\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m"#

    @Test func registryErrorMessagesAndMediaTypesAreEscaped() async throws {
        let directory = try TemporaryDirectory()
        let served = try OCILayout.create(at: directory.file("served"))
        let registry = try FaultRegistry(layout: served.path, fault: .hostile)
        try await RegistryClient.withClient(registry: registry.address) { client in
            let missing = await #expect(throws: BoxstackError.self) {
                try await client.manifest(repository: "app", reference: "missing")
            }
            #expect(missing?.code == .notFound)
            #expect(missing?.message.contains("MANIFEST_UNKNOWN: \(Self.escaped)gone") == true, "\(missing?.message ?? "")")
            #expect(missing?.message.unicodeScalars.contains { $0.value < 0x20 } == false)

            let strange = await #expect(throws: BoxstackError.self) {
                try await client.manifest(repository: "app", reference: "strange")
            }
            #expect(strange?.code == .unsupported)
            #expect(strange?.message.contains("\"application/\(Self.escaped)strange\"") == true, "\(strange?.message ?? "")")
            #expect(strange?.message.unicodeScalars.contains { $0.value < 0x20 } == false)
        }
    }
}
