import Foundation

/// A child process started with posix_spawn and reaped with waitpid: how boxstack starts programs.
///
/// Not Foundation's `Process`: it learns that a child ended when a socket the child inherited closes,
/// and then blocks in waitpid on it; OpenSSH programs close inherited descriptors at start-up, which
/// makes `Process` wait forever and stalls every other `Process` in the program. It also hands the
/// child the spawning thread's blocked signals and the controller's ignored ones (SIGINT and SIGTERM
/// while a teardown handler runs). Here the child starts with default signal handling, nothing
/// blocked, and only the three descriptors it is given.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t

    /// The Debian packages of the programs boxstack starts, for the error that names a missing one.
    static let debianPackages = [
        "qemu-img": "qemu-utils", "qemu-system-x86_64": "qemu-system-x86", "qemu-system-aarch64": "qemu-system-arm",
        "virtiofsd": "qemu-system-common", "mmdebstrap": "mmdebstrap", "skopeo": "skopeo", "umoci": "umoci",
        "unshare": "util-linux", "newuidmap": "uidmap", "newgidmap": "uidmap", "sftp-server": "openssh-sftp-server",
        "ssh-keygen": "openssh-client", "zstd": "zstd", "tar": "tar", "kiwi-ng": "kiwi",
        "virsh": "libvirt-clients", "docker-registry": "docker-registry", "xmllint": "libxml2-utils",
    ]
    private let lock = NSLock()
    private var reaped: ExitStatus?

    /// Starts `arguments[0]` (a path, or a name looked up on `PATH`) with the given descriptors as its
    /// standard streams; `environment` replaces this process's environment when given.
    public init(
        _ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil,
        standardInput: Int32, standardOutput: Int32, standardError: Int32
    ) throws {
        guard let executable = Subprocess.which(arguments[0]) else {
            let tool = (arguments[0] as NSString).lastPathComponent
            let install = Self.debianPackages[tool].map { "install the Debian package \($0) (apt-get install \($0))" } ?? "install it"
            throw BoxstackError(.notFound, "\(tool) is not installed or not on PATH; \(install), or run Scripts/setup.")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        posix_spawn_file_actions_adddup2(&actions, standardOutput, 1)
        posix_spawn_file_actions_adddup2(&actions, standardError, 2)
        Self.closeOthers(&actions)
        if let currentDirectory { try Self.changeDirectory(&actions, to: currentDirectory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for entry in envp ?? [] { free(entry) } }
        var child: pid_t = 0
        let result =
            envp.map { posix_spawn(&child, executable, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&child, executable, &actions, &attributes, argv, environ)
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
    public var status: ExitStatus? {
        lock.withLock {
            if reaped == nil { reaped = Self.reap(pid, options: WNOHANG) }
            return reaped
        }
    }

    /// Waits for the child to end.
    @discardableResult
    public func wait() -> ExitStatus {
        if let status { return status }
        let status = Self.reap(pid, options: 0) ?? .terminated(code: -1)
        lock.withLock { reaped = status }
        return status
    }

    /// Waits up to `grace` for the child to end, then kills it.
    @discardableResult
    public func finish(grace: Duration) -> ExitStatus {
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

    /// glibc 2.29+ changes the child's directory before exec (looked up by name, as above).
    private static func changeDirectory(_ actions: inout posix_spawn_file_actions_t, to directory: String) throws {
        typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else {
            throw BoxstackError(.unsupported, "this C library cannot start a program in another directory (glibc 2.29 or later is needed).")
        }
        _ = unsafeBitCast(symbol, to: AddChdir.self)(&actions, directory)
    }
}
