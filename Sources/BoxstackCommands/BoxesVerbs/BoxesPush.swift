import ArgumentParser
import Boxes
import BoxstackCore
import Foundation
import Registry

/// `boxstack boxes push NAME [--arch A] REGISTRY/REPO:TAG`: a cached or built box as an OCI artifact.
struct BoxesPush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Publish a box from the cache as an OCI artifact that an oci:// catalog source fetches.",
        discussion: """
            The box is fetched into the cache first if it is not there. Files the registry already has are \
            skipped; the catalog entry of everyone else then reads: source: oci://REGISTRY/REPO:TAG
            """)

    @Argument(help: "The box name.")
    var name: String

    @Argument(help: ArgumentHelp("Where to publish it.", valueName: "registry/repo:tag"))
    var destination: String

    @Flag(help: "Print what was pushed as JSON.")
    var json = false

    @OptionGroup var registry: RegistryOptions

    @ParentCommand var group: BoxesCommand

    func run() async throws {
        try group.root.refuseOptions(for: "boxes push", except: ["--arch"])
        try await reportingErrors {
            let target = try ImageReference(parsing: destination)
            guard target.digest == nil, let tag = target.tag, StashPush.hasExplicitTag(destination) else {
                throw BoxstackError(
                    .invalidArgument, "push a box to a tag (registry/repo:tag), so its catalog entry can name it: \(destination).")
            }
            let box = try BoxCatalog.load().box(named: name)
            let arch = group.root.box.requestedArch ?? hostArchitecture
            let timeouts = try RegistryTimeouts.fromEnvironment()
            let cached = try await BoxCache(registryTimeouts: timeouts).ensure(
                box, arch: arch, checkForUpdates: false, progress: ProgressBar.isTerminal)
            let files = try BoxArtifact.files(of: cached)
            let credentials = try RegistryCredentials.lookup(registry: target.registry, repository: target.repository)
            let result = try await RegistryClient.withClient(
                registry: target.registry, tlsVerify: registry.tlsVerify, credentials: credentials, timeouts: timeouts
            ) { client in
                try await BoxArtifact.push(
                    name: box.name, arch: arch, files: files, client: client, repository: target.repository, tag: tag)
            }
            if json {
                try printJSON(result)
                return
            }
            let skipped = result.skippedFiles.isEmpty ? "" : "; the registry had \(result.skippedFiles.joined(separator: ", "))"
            print("pushed \(box.name) (\(arch)) to \(result.reference) (\(result.digest)), \(ByteCount.format(result.uploadedBytes)) sent\(skipped)")
            print("catalog source: oci://\(result.reference)")
        }
    }
}
