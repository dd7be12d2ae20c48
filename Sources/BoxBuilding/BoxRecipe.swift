import Boxes
import BoxstackCore
import Foundation
import Kiwi

/// The KIWI description a box is built from: the directory `NAME/` beside the catalog file that defines
/// the box (`Boxes/NAME/` for the built-in catalog, so an organisation's own catalog brings its own
/// boxes), completed with what every box carries from boxstack's `Boxes/agent/`.
public struct BoxRecipe: Sendable {
    public let box: BoxDefinition
    /// The recipe's directory.
    public let directory: String
    public let description: KiwiDescription
    /// boxstack's `Boxes/agent/`: the guest agent, the seed service, sshd settings, KIWI overlay and config.sh.
    public let agentDirectory: String

    public init(box: BoxDefinition, agentDirectory: String? = Paths.shippedFile("Boxes/agent")) throws {
        self.box = box
        directory = (box.catalogPath as NSString).deletingLastPathComponent + "/" + box.name
        guard FileManager.default.fileExists(atPath: directory) else {
            throw BoxstackError(
                .notFound,
                "the box \(box.name) has no KIWI description to build it from: \(directory) does not exist (a box is built from NAME/config.kiwi beside the catalog that defines it, \(box.catalogPath))."
            )
        }
        description = try KiwiDescription(directory: directory)
        guard let agentDirectory, FileManager.default.fileExists(atPath: agentDirectory + "/boxstack-agent") else {
            throw BoxstackError(
                .notFound, "boxstack's Boxes/agent/ (the guest agent every box carries) is missing from this installation; run Scripts/setup again.")
        }
        self.agentDirectory = agentDirectory
    }

    /// The profiles to build for `arch`: the one named after the architecture, when the description has it
    /// (descriptions choose their kernel or repositories per architecture that way).
    public func profiles(for arch: String) -> [String] {
        description.profiles.contains(arch) ? [arch] : []
    }

    /// Writes the description to build into the empty directory `target`: the recipe's files, `config.sh`
    /// from `Boxes/agent/kiwi-config.sh` unless the recipe has its own, and in `root/` the agent, the seed
    /// service, the sshd settings and the KIWI overlay, which win over the recipe's own `root/` so every
    /// box speaks the same agent protocol.
    public func assemble(into target: String) throws {
        try FileManager.default.makeDirectory(target + "/root/usr/local/bin")
        try copyContents(of: directory, into: target)
        try copyContents(of: agentDirectory + "/overlay", into: target + "/root")
        try copyContents(of: agentDirectory + "/kiwi-overlay", into: target + "/root")
        try install(agentDirectory + "/boxstack-agent", at: target + "/root/usr/local/bin/boxstack-agent")
        if !FileManager.default.fileExists(atPath: target + "/config.sh") {
            try install(agentDirectory + "/kiwi-config.sh", at: target + "/config.sh")
        }
    }

    private func copyContents(of source: String, into target: String) throws {
        try Subprocess.run(["cp", "-a", "--", source + "/.", target + "/"]).check()
    }

    private func install(_ source: String, at target: String) throws {
        try Subprocess.run(["install", "-m", "0755", "--", source, target]).check()
    }
}
