import BoxstackCore
import Foundation

/// A long-lived helper process started with posix_spawn and reaped with waitpid.
///
/// Foundation's `Process` learns that a child ended when a socket the child inherited closes, and
/// then blocks in waitpid on it. OpenSSH programs close inherited descriptors at start-up, which
/// makes `Process` wait forever and stalls every other `Process` in the program. Spawning directly
/// avoids that; the child gets only the three descriptors it is given.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var reaped: ExitStatus?

    /// Starts `arguments[0]` (an absolute path) with the given descriptors as its standard streams.
    init(_ arguments: [String], standardInput: Int32, standardOutput: Int32, standardError: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        posix_spawn_file_actions_adddup2(&actions, standardOutput, 1)
        posix_spawn_file_actions_adddup2(&actions, standardError, 2)
        Self.closeOthers(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Reset signal handling the child would otherwise inherit (SIGPIPE ignored, blocked signals).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, arguments[0], &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw BoxstackError(.processFailed, "Cannot start \(arguments[0]): \(String(cString: strerror(result))).")
        }
        pid = child
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
    }

    /// The exit status once the child has ended, without waiting.
    var status: ExitStatus? {
        lock.withLock {
            if reaped == nil { reaped = Self.reap(pid, options: WNOHANG) }
            return reaped
        }
    }

    /// Waits for the child to end.
    func wait() -> ExitStatus {
        if let status { return status }
        let status = Self.reap(pid, options: 0) ?? .terminated(code: -1)
        lock.withLock { reaped = status }
        return status
    }

    /// Waits up to `grace` for the child to end, then kills it.
    func finish(grace: Duration) -> ExitStatus {
        let deadline = ContinuousClock.now + grace
        while status == nil && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if status == nil { kill(pid, SIGKILL) }
        return wait()
    }

    private static func reap(_ pid: pid_t, options: Int32) -> ExitStatus? {
        var raw: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &raw, options) } while result == -1 && errno == EINTR
        guard result == pid else { return result == -1 ? .terminated(code: -1) : nil }
        let signal = raw & 0x7f
        return signal == 0 ? .terminated(code: (raw >> 8) & 0xff) : .signalled(signal: signal)
    }

    /// glibc 2.34+ can close every descriptor above 2 in the child; Swift does not import the
    /// declaration, so it is looked up by name.
    private static func closeOthers(_ actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
    }
}
