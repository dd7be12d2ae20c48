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
        abstract: "Boot a box, run a shell command line in it through the agent (default: the agent's hello), and tear it down.")

    @Argument(help: "The box name.")
    var name: String

    @Option(help: ArgumentHelp("Architecture (default: the host's).", valueName: "arch"))
    var arch: String?

    @Flag(name: .customLong("no-accel"), help: "Never use KVM; emulate with TCG.")
    var noAccel = false

    @Option(help: ArgumentHelp("Seconds to wait for the box's agent.", valueName: "seconds"))
    var timeout: Int = 600

    @Option(name: .customLong("shared-path"), help: ArgumentHelp(
        "Share PATH at the same path in the box over 9p (repeatable).", valueName: "path"))
    var sharedPaths: [String] = []

    @Option(name: .customLong("exec"), help: ArgumentHelp(
        "A shell command line to run in the box (default: the agent's hello).", valueName: "command-line"))
    var commandLine: String?

    func run() async throws {
        let code = try await reportingErrors { () -> Int32 in
            let definition = try BoxCatalog.load().box(named: name)
            let cached = try await BoxCache().ensure(
                definition, arch: arch ?? hostArchitecture, checkForUpdates: false, progress: ProgressBar.isTerminal)
            var options = BoxSessionOptions(image: try BoxImage(cached))
            options.noAccel = noAccel
            options.timeout = .seconds(timeout)
            options.report = { FileHandle.standardError.write(Data("boxstack: \($0)\n".utf8)) }
            options.shares = try sharedPaths.map(SharedPath.existing)
            let started = ContinuousClock.now
            let session = try await BoxSession.start(options)
            defer { session.shutdown() }
            let ready = ContinuousClock.now - started
            FileHandle.standardError.write(Data("boxstack: agent ready after \(ready.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))\n".utf8))
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
            memoryBytes: cached.memory, cpus: cached.cpus)
    }
}
