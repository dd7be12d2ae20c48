import ArgumentParser
import BoxstackCore
import Foundation

/// `boxstack`: boxed KIWI builds, box management and stashes.
public struct Boxstack: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "boxstack",
        abstract: "Run KIWI image builds in throw-away build VMs, and keep built root trees as OCI images.",
        usage: """
            boxstack [BOX OPTIONS] -- --description DIR --target-dir DIR [KIWI BUILD OPTIONS]
              boxstack [BOX OPTIONS] -- --stash NAME[:TAG]... [--from-registry URI] --target-dir DIR [--description DIR] [KIWI OPTIONS]
              boxstack [BOX OPTIONS] --keep-root NAME[:TAG] -- --description DIR --target-dir DIR [KIWI BUILD OPTIONS]
              boxstack stash --root DIR [--container-name NAME] [--tag TAG] | --list [--json]
              boxstack stash rm|push|pull|unpack ...
              boxstack boxes list [--json] | fetch NAME | update [NAME] | rm NAME
              boxstack doctor | gc
            """,
        discussion: """
            Everything before '--' is for boxstack (the box options below); everything after it is for KIWI's 'system build' (or, with --stash, a stackbuild) and is checked against KIWI's own options before any VM starts. The description and target directories are shared into the box; KIWI builds on the box's own disk and the result bundle lands in the target directory together with boxstack.log. boxstack exits with KIWI's exit code.

            Build ./tiny in the debian box, as an ordinary user:
              boxstack --box debian -- --description tiny --target-dir out

            Rebuild from a stash alone, with no network in the box:
              boxstack --offline -- --stash tiny:1 --target-dir out

            A description whose root element is <derived> (Schemas/derived.rng) names its base stash and holds only what it changes; boxstack merges it into the description stored in that stash, writes merged-description.xml into the target directory and builds on the stash's root:
              boxstack -- --description tiny-derived --target-dir out
            """,
        version: BoxstackVersion.current,
        subcommands: [BoxesCommand.self, StashCommand.self, DoctorCommand.self, GCCommand.self]
    )

    @OptionGroup(title: "Box options")
    var box: BoxOptions

    @Option(
        name: .customLong("keep-root"),
        help: ArgumentHelp(
            "After the build, stash the image's root tree as NAME[:TAG].", valueName: "name[:tag]"))
    var keepRoot: String?

    @Argument(
        parsing: .postTerminator,
        help: ArgumentHelp(
            "KIWI arguments, after '--'.", valueName: "kiwi-arguments"))
    var kiwiArguments: [String] = []

    public init() {}

    /// SIGINT and SIGTERM run the registered clean-ups (a box's teardown, a stash's temporary) and end
    /// the program with 128 + the signal; taken over before any work starts, so none is missed.
    public static func takeOverSignals() {
        TeardownRegistry.shared.installSignalHandlers()
    }

    public func run() async throws {
        guard !kiwiArguments.isEmpty else {
            throw ValidationError(
                "give the KIWI arguments after '--', e.g. boxstack --box debian -- --description DIR --target-dir DIR")
        }
        let code = try await reportingErrors {
            try await BoxedBuildCommand(box: box, keepRoot: keepRoot, kiwiArguments: kiwiArguments).run()
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// Runs `body`, printing a `BoxstackError` as one plain sentence (and its details) instead of
/// ArgumentParser's usage-style message, and exiting non-zero.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as BoxstackError {
        FileHandle.standardError.write(Data("boxstack: \(error)\n".utf8))
        throw ExitCode(error.code == .invalidArgument ? ExitCode.validationFailure.rawValue : 1)
    }
}

/// Prints `value` as indented JSON with sorted keys: the `--json` output of every verb.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
