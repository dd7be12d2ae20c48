import BoxstackCore
import CLibSSH
import Foundation

/// What a remote command reads on its standard input.
public enum SSHInput: @unchecked Sendable {
    /// End of file at once.
    case none
    case data(Data)
    /// Everything read from this handle (a file or the read end of a pipe) until end of file.
    case fileHandle(FileHandle)
    /// Nothing, with end of file only when the channel closes: a command that watches its input
    /// (the agent's `run --watch-input`) learns that way that a cancelled run no longer wants it.
    case heldOpen
}

/// The output and status of a finished remote command.
public struct SSHCommandResult: Sendable {
    public var status: ExitStatus
    public var standardOutput: Data
    public var standardError: Data

    public var output: String { String(decoding: standardOutput, as: UTF8.self) }
    public var errorOutput: String { String(decoding: standardError, as: UTF8.self) }
}

extension SSHSession {
    /// Runs `command` (one command line for the remote user's shell; build it with `ShellQuote.join`)
    /// on a new exec channel. Output is handed to `onStdout`/`onStderr` as it arrives, on the calling
    /// thread. Returns the exit code, or the signal that ended the command.
    public func execute(
        _ command: String, input: SSHInput = .none, cancellation: SSHCancellation? = nil,
        onStdout: @escaping (Data) -> Void, onStderr: @escaping (Data) -> Void
    ) throws -> ExitStatus {
        try lock.withLock {
            guard !isClosed else {
                throw BoxstackError(.internalError, "The SSH session to \(endpoint) is already closed.")
            }
            let run = ChannelRun(session: self, command: command, input: input, onStdout: onStdout, onStderr: onStderr)
            return try run.run(cancellation: cancellation)
        }
    }

    /// `execute` off the caller's task; cancelling the task sends SIGTERM to the remote command,
    /// closes its channel and throws `interrupted`.
    public func execute(
        _ command: String, input: SSHInput = .none,
        onStdout: @escaping @Sendable (Data) -> Void, onStderr: @escaping @Sendable (Data) -> Void
    ) async throws -> ExitStatus {
        try await runCancellably { cancellation in
            try self.execute(command, input: input, cancellation: cancellation, onStdout: onStdout, onStderr: onStderr)
        }
    }

    /// Runs `command` and collects its output (for short answers, not bulk data).
    public func run(_ command: String, input: SSHInput = .none, cancellation: SSHCancellation? = nil) throws -> SSHCommandResult {
        var output = Data()
        var errors = Data()
        let status = try execute(
            command, input: input, cancellation: cancellation,
            onStdout: { output.append($0) }, onStderr: { errors.append($0) })
        return SSHCommandResult(status: status, standardOutput: output, standardError: errors)
    }

    /// `run` off the caller's task.
    public func run(_ command: String, input: SSHInput = .none) async throws -> SSHCommandResult {
        try await runCancellably { cancellation in try self.run(command, input: input, cancellation: cancellation) }
    }
}

/// One exec channel from open to close. Lives only while the session lock is held.
private final class ChannelRun {
    let session: SSHSession
    let command: String
    let onStdout: (Data) -> Void
    let onStderr: (Data) -> Void
    var input: InputFeed

    // Set by libssh callbacks during packet processing.
    var exitCode: Int32?
    var exitSignal: String?
    var remoteClosed = false

    /// Wakes the event loop when the input descriptor becomes readable; reading happens in the loop.
    private static let inputReadable: ssh_event_callback = { _, _, _ in 0 }

    init(session: SSHSession, command: String, input: SSHInput, onStdout: @escaping (Data) -> Void, onStderr: @escaping (Data) -> Void) {
        self.session = session
        self.command = command
        self.input = InputFeed(input)
        self.onStdout = onStdout
        self.onStderr = onStderr
    }

    private var summary: String {
        command.count > 80 ? String(command.prefix(77)) + "..." : command
    }

    private func lost(_ doing: String) -> BoxstackError {
        BoxstackError(
            .network,
            "The SSH connection to \(session.endpoint) failed while \(doing) \"\(summary)\": \(LibSSH.lastError(session.handle)).")
    }

    func run(cancellation: SSHCancellation?) throws -> ExitStatus {
        guard let channel = ssh_channel_new(session.handle) else { throw lost("opening a channel for") }
        defer { ssh_channel_free(channel) }
        guard ssh_channel_open_session(channel) == SSH_OK else { throw lost("opening a channel for") }

        let callbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
        callbacks.initialize(to: ssh_channel_callbacks_struct())
        defer { callbacks.deallocate() }
        Self.install(callbacks, for: self)
        ssh_set_channel_callbacks(channel, callbacks)
        defer { ssh_remove_channel_callbacks(channel, callbacks) }

        guard ssh_channel_request_exec(channel, command) == SSH_OK else {
            ssh_channel_close(channel)
            throw lost("starting")
        }

        guard let event = ssh_event_new() else { throw BoxstackError(.internalError, "libssh could not create an event loop.") }
        ssh_event_add_session(event, session.handle)
        var watchedInput: Int32?
        defer {
            if let watchedInput { ssh_event_remove_fd(event, watchedInput) }
            ssh_event_remove_session(event, session.handle)
            ssh_event_free(event)
        }

        var liveness = session.startLiveness()
        while !remoteClosed {
            if cancellation?.isCancelled == true || session.closeRequested.value {
                ssh_channel_request_send_signal(channel, "TERM")
                ssh_channel_close(channel)
                throw BoxstackError(.interrupted, "The remote command \"\(summary)\" was cancelled.")
            }
            try input.feed(channel, run: self)
            let wanted = input.descriptorToWatch(windowOpen: ssh_channel_window_size(channel) > 0)
            if wanted != watchedInput {
                if let watchedInput { ssh_event_remove_fd(event, watchedInput) }
                if let wanted { ssh_event_add_fd(event, wanted, Int16(POLLIN), Self.inputReadable, nil) }
                watchedInput = wanted
            }
            _ = ssh_event_dopoll(event, 100)
            if session.isConnectionLost { throw lost("running") }
            try session.checkPeerAlive(&liveness)
        }
        ssh_channel_close(channel)

        if let exitSignal { return .signalled(signal: Self.signalNumber(exitSignal)) }
        if let exitCode { return .terminated(code: exitCode) }
        throw BoxstackError(
            .guestFailed, "The remote command \"\(summary)\" ended without reporting an exit status; the remote side closed the channel.")
    }

    func lostInput() -> BoxstackError { lost("sending input to") }

    private static func install(_ callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>, for run: ChannelRun) {
        callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        callbacks.pointee.userdata = Unmanaged.passUnretained(run).toOpaque()
        callbacks.pointee.channel_data_function = { _, _, data, length, isStderr, userdata in
            guard let userdata, let data else { return 0 }
            let run = Unmanaged<ChannelRun>.fromOpaque(userdata).takeUnretainedValue()
            let chunk = Data(bytes: data, count: Int(length))
            if isStderr != 0 { run.onStderr(chunk) } else { run.onStdout(chunk) }
            return Int32(clamping: length)
        }
        callbacks.pointee.channel_exit_status_function = { _, _, status, userdata in
            guard let userdata else { return }
            Unmanaged<ChannelRun>.fromOpaque(userdata).takeUnretainedValue().exitCode = status
        }
        callbacks.pointee.channel_exit_signal_function = { _, _, signal, _, _, _, userdata in
            guard let userdata else { return }
            Unmanaged<ChannelRun>.fromOpaque(userdata).takeUnretainedValue().exitSignal =
                signal.map { String(cString: $0) } ?? "UNKNOWN"
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            guard let userdata else { return }
            Unmanaged<ChannelRun>.fromOpaque(userdata).takeUnretainedValue().remoteClosed = true
        }
    }

    /// SSH names signals without "SIG" (RFC 4254 §6.10).
    static func signalNumber(_ name: String) -> Int32 {
        let numbers: [String: Int32] = [
            "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "ABRT": SIGABRT, "FPE": SIGFPE,
            "KILL": SIGKILL, "SEGV": SIGSEGV, "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM,
            "USR1": SIGUSR1, "USR2": SIGUSR2, "BUS": SIGBUS, "TRAP": SIGTRAP, "SYS": SIGSYS,
        ]
        return numbers[name] ?? 0
    }
}

/// Feeds the command's standard input without ever blocking on a full SSH window.
private struct InputFeed {
    private enum Source {
        case bytes(Data, offset: Int)
        case descriptor(Int32)
        case held
        case exhausted
    }

    private var source: Source
    private var eofSent = false
    private static let chunkSize = 32 * 1024

    init(_ input: SSHInput) {
        switch input {
        case .none: source = .exhausted
        case .heldOpen: source = .held
        case .data(let data): source = .bytes(data, offset: 0)
        case .fileHandle(let handle): source = .descriptor(handle.fileDescriptor)
        }
    }

    func descriptorToWatch(windowOpen: Bool) -> Int32? {
        if case .descriptor(let descriptor) = source, windowOpen { return descriptor }
        return nil
    }

    mutating func feed(_ channel: OpaquePointer, run: ChannelRun) throws {
        guard !eofSent else { return }
        if ssh_channel_is_open(channel) == 0 || run.remoteClosed {
            eofSent = true  // The command is gone; what it did not read is dropped, as with a pipe.
            return
        }
        switch source {
        case .exhausted, .held:
            break
        case .bytes(let data, var offset):
            while offset < data.count {
                let window = Int(ssh_channel_window_size(channel))
                guard window > 0 else { break }
                let count = min(window, Self.chunkSize, data.count - offset)
                let written = data.withUnsafeBytes { buffer in
                    ssh_channel_write(channel, buffer.baseAddress! + offset, UInt32(count))
                }
                guard written > 0 else { throw run.lostInput() }
                offset += Int(written)
            }
            source = offset < data.count ? .bytes(data, offset: offset) : .exhausted
        case .descriptor(let descriptor):
            var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
            while true {
                let window = Int(ssh_channel_window_size(channel))
                guard window > 0 else { break }
                var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 0) > 0 else { break }
                let count = read(descriptor, &buffer, min(window, Self.chunkSize))
                if count < 0 {
                    if errno == EINTR || errno == EAGAIN { break }
                    throw BoxstackError(.processFailed, "Reading the input for the remote command failed: \(String(cString: strerror(errno))).")
                }
                if count == 0 {
                    source = .exhausted
                    break
                }
                guard ssh_channel_write(channel, buffer, UInt32(count)) == Int32(count) else { throw run.lostInput() }
            }
        }
        if case .exhausted = source {
            ssh_channel_send_eof(channel)
            eofSent = true
        }
    }
}
