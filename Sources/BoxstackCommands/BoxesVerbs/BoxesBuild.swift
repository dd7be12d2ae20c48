import ArgumentParser
import BoxBuilding
import Boxed
import Boxes
import BoxstackCore
import Foundation
import Registry

/// `boxstack [--box BUILDER] boxes build NAME [--arch A] [--output DIR]`: a box from its KIWI description.
struct BoxesBuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a box from its KIWI description inside the debian box (or --box BUILDER), as an ordinary user.",
        discussion: """
            The description is NAME/ beside the catalog that defines the box (Boxes/NAME/ for the built-in \
            one); boxstack adds the guest agent, seed service and sshd settings of Boxes/agent/. The builder \
            box has the architecture of the box being built (--arch, --aarch64), so a foreign box is built \
            under emulation. The kernel, initrd and qcow2 disk go with a .sha256 beside each into --output, \
            and into the box cache, so --box NAME boots the new box next; boxes push publishes it.
            """)

    @Argument(help: "The box to build.")
    var name: String

    @Option(
        help: ArgumentHelp(
            "Where to publish the files (default: ~/.local/share/boxstack/boxes/NAME/ARCH).", valueName: "directory"))
    var output: String?

    @Flag(help: "Print what was built as JSON.")
    var json = false

    @ParentCommand var group: BoxesCommand

    func run() async throws {
        let options = group.root.box
        // KIWI fetches the box's packages, so --offline cannot apply; the build has no debug shell to keep.
        try group.root.refuseOptions(
            for: "boxes build", except: BoxOptions.sessionOptionNames.subtracting(["--offline", "--box-debug"]).union(["--box"]))
        try await reportingErrors {
            let catalog = try BoxCatalog.load()
            let recipe = try BoxRecipe(box: try catalog.box(named: name))
            let arch = options.requestedArch ?? hostArchitecture
            _ = try recipe.box.architecture(arch)
            let paths = Paths()
            let outputDirectory = absolute(output ?? paths.builtBoxesDirectory + "/\(name)/\(arch)")

            let cache = BoxCache(registryTimeouts: try RegistryTimeouts.fromEnvironment())
            let session = try options.sessionOptions(image: try await options.cachedImage(catalog: catalog, cache: cache))
            session.report("building the box \(name) for \(arch) from \(recipe.description.path) in the \(options.box) box")
            let work = paths.cacheDirectory + "/box-builds/\(name)-\(arch)-\(UUID().uuidString.prefix(8).lowercased())"
            let result = try await BoxBuilder.build(
                recipe, arch: arch, builder: session, workDirectory: work, output: outputDirectory, cache: cache)
            if json {
                try printJSON(result)
                return
            }
            print("built \(name) (\(arch)) in \(result.seconds) s into \(outputDirectory); it is in the box cache")
            if let source = try recipe.box.architecture(arch).source {
                print(
                    "note: the catalog entry of \(name) names the source \(source); an update check will replace this build with what it publishes (push it there with boxstack boxes push, or pass --no-update-check)"
                )
            }
        }
    }

    private func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }
}
