import BoxstackCore
import Foundation

/// What the box's agent says about itself.
public struct GuestAgentHello: Sendable, Equatable {
    public var agentVersion: Int
    /// `uname -m` in the box, for example "x86_64" or "aarch64".
    public var architecture: String
    /// The KIWI version installed in the box, or nil when it has none.
    public var kiwiVersion: String?

    public init(agentVersion: Int, architecture: String, kiwiVersion: String?) {
        self.agentVersion = agentVersion
        self.architecture = architecture
        self.kiwiVersion = kiwiVersion
    }
}

/// The controller's side of the guest agent protocol (Docs/guest-agent.md): each verb is one
/// `boxstack-agent VERB ARGS...` command line on its own exec channel of an `SSHSession`.
public struct GuestAgent: Sendable {
    /// The protocol version this controller speaks; `hello` refuses any other.
    public static let protocolVersion = 4

    public let session: SSHSession
    /// How the agent is invoked: `["boxstack-agent"]` in a box (it is on root's PATH).
    public let agentCommand: [String]

    public init(session: SSHSession, agentCommand: [String] = ["boxstack-agent"]) {
        self.session = session
        self.agentCommand = agentCommand
    }

    /// The shell command line for one agent verb.
    public func commandLine(_ verb: String, _ arguments: [String] = []) -> String {
        ShellQuote.join(agentCommand + [verb] + arguments)
    }

    /// Asks the agent for its version, architecture and KIWI version, and checks that it speaks
    /// this controller's protocol.
    public func hello() throws -> GuestAgentHello {
        let result = try session.run(commandLine("hello"))
        if result.status == .terminated(code: 127) || (!result.status.isSuccess && result.errorOutput.contains("not found")) {
            throw BoxstackError(
                .guestFailed,
                "The box has no boxstack agent (\(agentCommand.joined(separator: " ")) was not found); rebuild the box (Scripts/build-box debian, or boxstack boxes build NAME).",
                details: Self.lastLines(result.errorOutput))
        }
        guard result.status.isSuccess else {
            throw BoxstackError(
                .guestFailed, "The box's boxstack agent failed to answer hello (\(result.status)).",
                details: Self.lastLines(result.errorOutput))
        }
        let hello = try Self.parseHello(result.output)
        guard hello.agentVersion == Self.protocolVersion else {
            throw BoxstackError(
                .guestFailed,
                "The box's boxstack agent speaks protocol version \(hello.agentVersion), but this boxstack speaks version \(Self.protocolVersion); rebuild the box with this boxstack (Scripts/build-box debian, or boxstack boxes build NAME), or use a boxstack that matches the box."
            )
        }
        return hello
    }

    /// Parses the `key=value` lines `hello` prints.
    public static func parseHello(_ text: String) throws -> GuestAgentHello {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let versionText = fields["agent-version"], let version = Int(versionText) else {
            throw BoxstackError(
                .guestFailed,
                "The box's boxstack agent answered hello without an agent-version line; it is not a boxstack agent of any known version.",
                details: lastLines(text))
        }
        let kiwi = fields["kiwi-version"].flatMap { $0.isEmpty || $0 == "none" ? nil : $0 }
        return GuestAgentHello(agentVersion: version, architecture: fields["arch"] ?? "unknown", kiwiVersion: kiwi)
    }

    /// Starts the box's resume listener, which waits on the resume port for the run that restores the
    /// box from a warm image (`ResumeChannel`); called just before the box is saved as one.
    public func awaitResume() throws {
        try check("await-resume", [], failure: "Starting the box's resume listener failed")
    }

    /// Mounts the 9p share `tag` at `directory` in the box (created if missing).
    public func mount9p(tag: String, at directory: String, msize: Int? = nil) throws {
        try check(
            "mount", ["9p", tag, directory] + (msize.map { [String($0)] } ?? []),
            failure: "Mounting the 9p share \(tag) at \(directory) in the box failed")
    }

    /// Mounts the virtiofs share `tag` at `directory` in the box (created if missing).
    public func mountVirtiofs(tag: String, at directory: String) throws {
        try check("mount", ["virtiofs", tag, directory], failure: "Mounting the virtiofs share \(tag) at \(directory) in the box failed")
    }

    /// The command line that makes the box mount `hostDirectory` at `guestDirectory` with
    /// `sshfs -o passive`, speaking SFTP over the channel (see `SFTPBridge`).
    public func sshfsMountCommand(hostDirectory: String, guestDirectory: String) -> String {
        commandLine("sshfs-mount", [hostDirectory, guestDirectory])
    }

    /// Runs `argv` in the box, streaming its output, and returns its exit status. Cancelling the
    /// task closes the channel, and the agent then ends the command (see `run --watch-input`).
    public func run(
        _ argv: [String], cwd: String? = nil, environment: [String: String] = [:],
        onStdout: @escaping @Sendable (Data) -> Void, onStderr: @escaping @Sendable (Data) -> Void
    ) async throws -> ExitStatus {
        try await session.execute(
            runCommandLine(argv, cwd: cwd, environment: environment), input: .heldOpen, onStdout: onStdout, onStderr: onStderr)
    }

    func runCommandLine(_ argv: [String], cwd: String?, environment: [String: String]) -> String {
        var arguments = ["--watch-input"]
        if let cwd { arguments += ["--cwd", cwd] }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) { arguments += ["--env", "\(key)=\(value)"] }
        return commandLine("run", arguments + ["--"] + argv)
    }

    /// The NUL-separated manifest records of every entry under `root` (see the guest contract).
    public func treeManifest(root: String) throws -> Data {
        let result = try session.run(commandLine("tree-manifest", [root]))
        guard result.status.isSuccess else {
            throw BoxstackError(
                .guestFailed, "Listing the tree \(root) in the box failed (\(result.status)).",
                details: Self.lastLines(result.errorOutput))
        }
        return result.standardOutput
    }

    /// Writes a tar of the NUL-separated relative paths in `listFile` under `root` to `outputFile`,
    /// all paths in the box.
    public func treeExport(root: String, listFile: String, outputFile: String) throws {
        try check("tree-export", [root, listFile, outputFile], failure: "Exporting files of \(root) in the box failed")
    }

    /// Extracts the tar `tarFile` into `root`, both paths in the box.
    public func treeImport(root: String, tarFile: String) throws {
        try check("tree-import", [root, tarFile], failure: "Importing \(tarFile) into \(root) in the box failed")
    }

    /// Writes `data` to `path` in the box (mode 0644), through the channel: for small files only.
    public func writeFile(_ data: Data, to path: String) throws {
        let result = try session.run(
            ShellQuote.join(["sh", "-c", "umask 022 && mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\"", "sh", path]), input: .data(data))
        guard result.status.isSuccess else {
            throw BoxstackError(.guestFailed, "Writing \(path) in the box failed (\(result.status)): \(result.errorOutput)")
        }
    }

    /// Asks the box to power off; it goes down shortly after the command returns.
    public func poweroff() throws {
        try check("poweroff", [], failure: "Asking the box to power off failed")
    }

    private func check(_ verb: String, _ arguments: [String], failure: String) throws {
        let result = try session.run(commandLine(verb, arguments))
        guard result.status.isSuccess else {
            let lines = result.errorOutput.split(separator: "\n")
            let reason = lines.last.map { ": \($0)" } ?? ""
            throw BoxstackError(
                .guestFailed, "\(failure) (\(result.status))\(reason).",
                details: lines.count > 1 ? Self.lastLines(result.errorOutput) : nil)
        }
    }

    static func lastLines(_ text: String, count: Int = 5) -> String {
        text.split(separator: "\n").suffix(count).joined(separator: "\n")
    }
}
