import ArgumentParser
import Boxed
import Boxes
import BoxstackCore
import Foundation
import Machine
import Sharing

/// `boxstack boxes run NAME [--exec COMMAND-LINE]`: boot a box, run one command through its agent, tear it down.
struct BoxesRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a box, run a shell command line in it through the agent (default: the agent's hello), and tear it down.",
        discussion:
            "The box options of 'boxstack --help' that shape a box apply (--arch, --box-memory, --box-debug, --no-accel, --timeout, --shared-path, ...); the KIWI ones are refused."
    )

    @Argument(help: "The box name.")
    var name: String

    @ParentCommand var group: BoxesCommand

    @Option(
        name: .customLong("exec"),
        help: ArgumentHelp(
            "A shell command line to run in the box (default: the agent's hello).", valueName: "command-line"))
    var commandLine: String?

    func run() async throws {
        let box = group.root.box
        try group.root.refuseOptions(for: "boxes run", except: BoxOptions.sessionOptionNames)
        let code = try await reportingErrors { () -> Int32 in
            let options = try box.sessionOptions(image: try await box.cachedImage(named: name))
            let started = ContinuousClock.now
            let session = try await BoxSession.start(options)
            defer {
                if box.boxDebug {
                    FileHandle.standardError.write(
                        Data("boxstack: the box keeps running (--box-debug); get in with:\n\(session.debugInstructions)\n".utf8))
                }
                session.shutdown()
            }
            let ready = ContinuousClock.now - started
            FileHandle.standardError.write(
                Data("boxstack: agent ready after \(ready.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))\n".utf8))
            guard let agent = session.agent else { throw BoxstackError(.internalError, "the box session has no agent.") }
            let argv = commandLine.map { ["sh", "-c", $0] } ?? ["boxstack-agent", "hello"]
            let status = try await agent.run(
                argv, onStdout: { FileHandle.standardOutput.write($0) }, onStderr: { FileHandle.standardError.write($0) })
            return BoxedBuild.exitCode(status)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

extension BoxImage {
    /// The cached box's files and defaults.
    init(_ cached: CachedBox) throws {
        self.init(
            name: cached.name, architecture: try MachineArchitecture.named(cached.arch), kernel: cached.kernel,
            initrd: cached.initrd, disk: cached.disk, kernelArguments: cached.cmdline, console: cached.console,
            memoryBytes: cached.memory, cpus: cached.cpus, fileDigests: cached.fileDigests.map(\.description))
    }
}
