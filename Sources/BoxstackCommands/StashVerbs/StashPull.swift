import ArgumentParser
import BoxstackCore
import Foundation
import OCI
import Registry
import Stash

#if canImport(Glibc)
import Glibc
#endif

/// `boxstack stash pull REGISTRY/REPO[:TAG] [--as NAME[:TAG]]`.
struct StashPull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Pull an image from a registry into the stash store (only missing blobs are downloaded, all verified).")

    @Argument(help: ArgumentHelp("The image to pull.", valueName: "registry/repo[:tag]"))
    var source: String

    @Option(name: .customLong("as"), help: ArgumentHelp(
        "The stash to store it as (default: the repository and tag of the image).", valueName: "name[:tag]"))
    var stashAs: String?

    @Option(name: .customLong("tls-verify"), help: ArgumentHelp(
        "Verify the registry's TLS certificate (127.0.0.1 and localhost use plain HTTP).", valueName: "bool"))
    var tlsVerify = true

    func run() async throws {
        try await reportingErrors {
            let image = try ImageReference(parsing: source)
            let target = try stashAs.map { try StashReference(parsing: $0) }
                ?? StashReference(name: image.repository, tag: image.tag ?? "latest")
            let store = StashStore()
            let lock = try store.lock(name: target.name)
            defer { _ = lock }
            let finalPath = store.layoutPath(name: target.name)
            let isFirst = !OCILayout.exists(at: finalPath)
            // A first pull goes to a temporary layout that is renamed into place, so a failure leaves nothing.
            let workingPath = isFirst ? store.directory + "/.tmp-" + UUID().uuidString : finalPath
            if isFirst { try FileManager.default.makeDirectory(store.directory) }
            defer { if isFirst { try? FileManager.default.removeItem(atPath: workingPath) } }
            let layout = isFirst ? try OCILayout.create(at: workingPath) : try OCILayout(opening: finalPath)
            let credentials = try RegistryCredentials.lookup(registry: image.registry, repository: image.repository)
            let manifest = try await RegistryClient.withClient(
                registry: image.registry, tlsVerify: tlsVerify, credentials: credentials
            ) { client in
                try await ImageTransfer(client: client).pull(reference: image, into: layout, tag: target.tag)
            }
            if isFirst {
                try FileManager.default.makeDirectory((finalPath as NSString).deletingLastPathComponent)
                guard rename(workingPath, finalPath) == 0 else {
                    throw BoxstackError(.permission, "cannot move the pulled stash into \(finalPath): \(String(cString: strerror(errno))).")
                }
            } else {
                try layout.garbageCollect()
            }
            print("pulled \(image) as \(target) (\(manifest.digest))")
        }
    }
}
