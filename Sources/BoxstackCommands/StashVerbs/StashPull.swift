import ArgumentParser
import BoxstackCore
import Foundation
import Registry
import Stash

/// `boxstack stash pull REGISTRY/REPO[:TAG] [--as NAME[:TAG]]`.
struct StashPull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Pull an image from a registry into the stash store (only missing blobs are downloaded, all verified).")

    @Argument(help: ArgumentHelp("The image to pull.", valueName: "registry/repo[:tag]"))
    var source: String

    @Option(
        name: .customLong("as"),
        help: ArgumentHelp(
            "The stash to store it as (default: the repository and tag of the image).", valueName: "name[:tag]"))
    var stashAs: String?

    @OptionGroup var registry: RegistryOptions

    func run() async throws {
        try await reportingErrors {
            let image = try ImageReference(parsing: source)
            let target =
                try stashAs.map { try StashReference(parsing: $0) }
                ?? StashReference(name: image.repository, tag: image.tag ?? "latest")
            let manifest = try await StashStore().pull(
                image, as: target, tlsVerify: registry.tlsVerify, timeouts: try RegistryTimeouts.fromEnvironment())
            print("pulled \(image) as \(target) (\(manifest.digest))")
        }
    }
}
