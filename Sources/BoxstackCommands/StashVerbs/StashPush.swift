import ArgumentParser
import BoxstackCore
import Foundation
import Registry
import Stash

/// `boxstack stash push NAME[:TAG] REGISTRY/REPO[:TAG]`.
struct StashPush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push a stash to a registry (blobs the registry has are skipped).")

    @Argument(help: ArgumentHelp("The stash to push.", valueName: "name[:tag]"))
    var stash: String

    @Argument(
        help: ArgumentHelp(
            "Where to push it; the tag defaults to the stash's tag.", valueName: "registry/repo[:tag]"))
    var destination: String

    @OptionGroup var registry: RegistryOptions

    func run() async throws {
        try await reportingErrors {
            let source = try StashReference(parsing: stash)
            var target = try ImageReference(parsing: destination)
            if target.digest != nil {
                throw BoxstackError(.invalidArgument, "push to a tag, not a digest: \(destination).")
            }
            if !Self.hasExplicitTag(destination) { target.tag = source.tag }
            let store = StashStore()
            let lock = try store.lock(name: source.name, shared: true)
            defer { _ = lock }
            let layout = try store.layout(name: source.name)
            let credentials = try RegistryCredentials.lookup(registry: target.registry, repository: target.repository)
            let digest = try await RegistryClient.withClient(
                registry: target.registry, tlsVerify: registry.tlsVerify, credentials: credentials,
                timeouts: try RegistryTimeouts.fromEnvironment()
            ) { client in
                try await ImageTransfer(client: client).push(layout: layout, tag: source.tag, to: target)
            }
            print("pushed \(source) to \(target) (\(digest))")
        }
    }

    /// True when `text` names a tag (a ':' after its last '/').
    static func hasExplicitTag(_ text: String) -> Bool {
        let withoutDigest = text.split(separator: "@", maxSplits: 1).first ?? ""
        return withoutDigest.split(separator: "/").last?.contains(":") ?? false
    }
}
