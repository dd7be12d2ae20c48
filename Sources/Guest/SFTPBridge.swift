import BoxstackCore
import Foundation

/// Serves a host directory to the box over SFTP without a host sshd or any authorized_keys entry.
///
/// The box runs `sshfs -o passive`, which speaks SFTP on the standard input and output of an exec
/// channel; this bridge joins that channel to a local `sftp-server` process, byte for byte, until
/// either side ends. It uses its own SSH session, so commands on other sessions run meanwhile.
public final class SFTPBridge: @unchecked Sendable {
    public let endpoint: SSHEndpoint
    public let hostDirectory: String
    /// The command line run in the box; its standard input and output carry the SFTP stream.
    public let remoteCommand: String
    public let sftpServerPath: String

    private let options: SSHSessionOptions
    private let state = LockedBox(State())
    private let cancellation = SSHCancellation()
    private let finished = DispatchSemaphore(value: 0)

    private struct State {
        var started = false
        var outcome: Result<ExitStatus, any Error>?
        var diagnostics: [String] = []
    }

    public static let defaultSFTPServer = "/usr/lib/openssh/sftp-server"

    /// A bridge that has the box mount `hostDirectory` at `guestDirectory` through its agent.
    public convenience init(
        endpoint: SSHEndpoint, hostDirectory: String, guestDirectory: String, agentCommand: [String] = ["boxstack-agent"],
        options: SSHSessionOptions = SSHSessionOptions(), sftpServerPath: String = SFTPBridge.defaultSFTPServer
    ) {
        let command = ShellQuote.join(agentCommand + ["sshfs-mount", hostDirectory, guestDirectory])
        self.init(
            endpoint: endpoint, hostDirectory: hostDirectory, remoteCommand: command, options: options,
            sftpServerPath: sftpServerPath)
    }

    /// A bridge for any remote command that speaks SFTP (as a client) on its standard streams.
    public init(
        endpoint: SSHEndpoint, hostDirectory: String, remoteCommand: String,
        options: SSHSessionOptions = SSHSessionOptions(), sftpServerPath: String = SFTPBridge.defaultSFTPServer
    ) {
        self.endpoint = endpoint
        self.hostDirectory = hostDirectory
        self.remoteCommand = remoteCommand
        self.options = options
        self.sftpServerPath = sftpServerPath
    }

    /// Opens the bridge's SSH session, starts `sftp-server` and the remote command, and returns
    /// while bytes flow on a thread of the bridge's own.
    public func start() throws {
        try state.withValue { state in
            guard !state.started else { throw BoxstackError(.internalError, "The SFTP bridge was already started.") }
            state.started = true
        }
        do {
            try launch()
        } catch {
            state.withValue { $0.outcome = .failure(error) }
            finished.signal()
            throw error
        }
    }

    private func launch() throws {
        guard FileManager.default.isExecutableFile(atPath: sftpServerPath) else {
            throw BoxstackError(
                .notFound, "\(sftpServerPath) is missing; install openssh-sftp-server to use --sshfs-sharing.")
        }
        let session = try SSHSession.connect(to: endpoint, options: options)

        let requests = try PipeEnds()
        let replies = try PipeEnds()
        let errors = try PipeEnds()
        let server: ChildProcess
        do {
            // -e: log to stderr (collected for error messages) instead of syslog.
            server = try ChildProcess(
                [sftpServerPath, "-e", "-d", hostDirectory], standardInput: requests.read,
                standardOutput: replies.write, standardError: errors.write)
        } catch {
            for pipe in [requests, replies, errors] { pipe.closeBoth() }
            throw error
        }
        close(requests.read)
        close(replies.write)
        close(errors.write)
        let serverErrors = FileHandle(fileDescriptor: errors.read, closeOnDealloc: true)
        Thread.detachNewThread { [self] in
            while let chunk = try? serverErrors.read(upToCount: 4096), !chunk.isEmpty { note(chunk) }
        }

        let toServer = PipeWriter(FileHandle(fileDescriptor: requests.write, closeOnDealloc: true))
        let fromServer = FileHandle(fileDescriptor: replies.read, closeOnDealloc: true)
        Thread.detachNewThread { [self] in
            let outcome = Result {
                try session.execute(
                    remoteCommand, input: .fileHandle(fromServer), cancellation: cancellation,
                    onStdout: { toServer.enqueue($0) }, onStderr: { [weak self] in self?.note($0) })
            }
            toServer.finish()
            session.close()
            // sftp-server exits when its input closes; one that does not is killed after 5 s.
            _ = server.finish(grace: .seconds(5))
            try? fromServer.close()
            state.withValue { $0.outcome = outcome }
            finished.signal()
        }
    }

    /// Stops the remote command and `sftp-server`, and waits for both.
    public func stop() {
        cancellation.cancel()
        guard state.value.started else { return }
        _ = try? wait()
    }

    /// Waits until the stream ends and returns the remote command's exit status.
    @discardableResult
    public func wait() throws -> ExitStatus {
        finished.wait()
        finished.signal()  // Later waiters return at once.
        let (outcome, diagnostics) = state.withValue { ($0.outcome, $0.diagnostics) }
        switch outcome {
        case .success(let status): return status
        case .failure(let error as BoxstackError) where error.code == .interrupted: return .signalled(signal: SIGTERM)
        case .failure(let error):
            throw BoxstackError(
                .guestFailed, "The sshfs share of \(hostDirectory) failed: \(error)",
                details: diagnostics.suffix(5).joined(separator: "\n"))
        case .none: throw BoxstackError(.internalError, "The SFTP bridge ended without an outcome.")
        }
    }

    /// Lines the remote command and `sftp-server` wrote to their error streams (the last 50).
    public var diagnostics: [String] { state.value.diagnostics }

    private func note(_ chunk: Data) {
        let lines = String(decoding: chunk, as: UTF8.self).split(separator: "\n").map(String.init)
        state.withValue { state in
            state.diagnostics.append(contentsOf: lines)
            if state.diagnostics.count > 50 { state.diagnostics.removeFirst(state.diagnostics.count - 50) }
        }
    }
}

/// Writes to a pipe on a thread of its own, in order, so the SSH event loop never blocks on a
/// full pipe (sftp-server stops reading while its replies are not read). SIGPIPE is blocked on that
/// thread, so a reader that went away turns into an ignored EPIPE.
private final class PipeWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let condition = NSCondition()
    private var queue: [Data] = []
    private var closing = false

    init(_ handle: FileHandle) {
        self.handle = handle
        Thread.detachNewThread { [self] in drain() }
    }

    func enqueue(_ data: Data) {
        condition.withLock {
            queue.append(data)
            condition.signal()
        }
    }

    func finish() {
        condition.withLock {
            closing = true
            condition.signal()
        }
    }

    private func drain() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        var broken = false
        while true {
            let next: Data? = condition.withLock {
                while queue.isEmpty && !closing { condition.wait() }
                return queue.isEmpty ? nil : queue.removeFirst()
            }
            guard let next else { break }
            if !broken { broken = !writeAll(next) }
        }
        try? handle.close()
    }

    private func writeAll(_ data: Data) -> Bool {
        data.withUnsafeBytes { buffer in
            FileDescriptor.writeAll(buffer, to: handle.fileDescriptor) == 0
        }
    }
}
