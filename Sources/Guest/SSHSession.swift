import BoxstackCore
import CLibSSH
import Foundation

/// Where and as whom to log in, and the one host key the server must present.
public struct SSHEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    /// An unencrypted private key file (for example from `SSHKeyPair.generateEd25519`).
    public var privateKeyPath: String
    /// The pinned server host key as an OpenSSH public key line; any other key is refused.
    public var hostKey: String

    public init(host: String = "127.0.0.1", port: Int, user: String = "root", privateKeyPath: String, hostKey: String) {
        self.host = host
        self.port = port
        self.user = user
        self.privateKeyPath = privateKeyPath
        self.hostKey = hostKey
    }

    public var description: String { "\(user)@\(host):\(port)" }
}

/// Time bounds for a session.
public struct SSHSessionOptions: Sendable {
    /// Bounds one connection attempt (TCP connect, key exchange, login) and each blocking SSH request.
    public var requestTimeout: Duration
    /// How long a connection attempt may stay silent before it is dropped and tried again. QEMU's
    /// user-mode network accepts connections before the guest's sshd listens, so silence is common
    /// while a box boots; the wait doubles after each silent try, up to `requestTimeout`, and fresh
    /// connections are opened meanwhile (`ServerSocket`).
    public var bannerTimeout: Duration
    /// After this long without any byte from the server, a keepalive request is sent.
    public var keepaliveInterval: Duration
    /// After this long without any byte from the server, the peer counts as dead.
    public var deadPeerTimeout: Duration
    /// The pause between connection attempts while waiting for a booting box.
    public var retryInterval: Duration

    public init(
        requestTimeout: Duration = .seconds(30), bannerTimeout: Duration = .seconds(5),
        keepaliveInterval: Duration = .seconds(15), deadPeerTimeout: Duration = .seconds(120),
        retryInterval: Duration = .milliseconds(250)
    ) {
        self.requestTimeout = requestTimeout
        self.bannerTimeout = bannerTimeout
        self.keepaliveInterval = keepaliveInterval
        self.deadPeerTimeout = deadPeerTimeout
        self.retryInterval = retryInterval
    }
}

/// A cancellation flag a running command polls (about ten times a second).
public final class SSHCancellation: Sendable {
    private let flag = LockedBox(false)
    public init() {}
    public func cancel() { flag.value = true }
    public var isCancelled: Bool { flag.value }
}

/// One logged-in libssh session with a pinned host key.
///
/// libssh sessions are not thread-safe, so every use of the session holds its lock: commands on
/// one session run one after another. Open several sessions to run commands side by side.
public final class SSHSession: @unchecked Sendable {
    public let endpoint: SSHEndpoint
    public let options: SSHSessionOptions

    let lock = NSLock()
    let handle: OpaquePointer
    /// Raw bytes read from the socket: any growth proves the peer is alive.
    let socketCounter: UnsafeMutablePointer<ssh_counter_struct>
    var isClosed = false
    private var keepalivesSentCount = 0

    private init(endpoint: SSHEndpoint, options: SSHSessionOptions, handle: OpaquePointer) {
        self.endpoint = endpoint
        self.options = options
        self.handle = handle
        socketCounter = .allocate(capacity: 1)
        socketCounter.initialize(to: ssh_counter_struct())
        ssh_set_counters(handle, socketCounter, nil)
        Self.setTimeout(handle, options.requestTimeout)
    }

    deinit {
        if !isClosed { ssh_disconnect(handle) }
        ssh_free(handle)
        socketCounter.deallocate()
    }

    /// Keepalive requests sent so far (they are only sent while the connection is idle).
    public var keepalivesSent: Int { lock.withLock { keepalivesSentCount } }

    /// Set by `close` before it waits for the session: a command running on another thread polls it and
    /// ends, so closing (a teardown on Ctrl-C, say) never waits for a build to finish.
    let closeRequested = LockedBox(false)

    /// Says goodbye to the server, ending a command that is still running; later commands fail.
    public func close() {
        closeRequested.value = true
        lock.withLock {
            guard !isClosed else { return }
            isClosed = true
            ssh_disconnect(handle)
        }
    }

    // MARK: - Connecting

    /// Connects once and logs in; fails at once if the server is not there.
    public static func connect(to endpoint: SSHEndpoint, options: SSHSessionOptions = SSHSessionOptions()) throws -> SSHSession {
        let deadline = ContinuousClock.now + options.requestTimeout
        do {
            return try attempt(endpoint, options: options, bannerTimeout: options.bannerTimeout, deadline: deadline)
        } catch {
            switch error {
            case .permanent(let error): throw error
            case .retryable(let reason, _):
                throw BoxstackError(.network, "Cannot open an SSH session to \(endpoint): \(reason).")
            }
        }
    }

    /// Connects and logs in, retrying while the server is not up yet (refused, reset, closed or
    /// silent connections, as a booting box gives), until `deadline`. A wrong host key or a refused
    /// login key fail at once. `whileWaiting` runs before each attempt and may throw to give up
    /// early, for example when the box's VM has stopped.
    public static func waitUntilReachable(
        _ endpoint: SSHEndpoint, deadline: ContinuousClock.Instant,
        options: SSHSessionOptions = SSHSessionOptions(), cancellation: SSHCancellation? = nil,
        whileWaiting: () throws -> Void = {}
    ) throws -> SSHSession {
        let started = ContinuousClock.now
        var lastReason = "no attempt was made"
        var bannerWait = options.bannerTimeout
        while true {
            if cancellation?.isCancelled == true {
                throw BoxstackError(.interrupted, "Waiting for the SSH server at \(endpoint) was cancelled.")
            }
            try whileWaiting()
            let attemptStart = ContinuousClock.now
            if attemptStart >= deadline { break }
            do {
                return try attempt(endpoint, options: options, bannerTimeout: bannerWait, deadline: deadline)
            } catch {
                switch error {
                case .permanent(let error): throw error
                case .retryable(let reason, let silent):
                    lastReason = reason
                    if silent { bannerWait = min(bannerWait * 2, options.requestTimeout) }
                }
            }
            let pause = min(options.retryInterval, deadline - ContinuousClock.now)
            if pause > .zero { Thread.sleep(forTimeInterval: pause.seconds) }
        }
        let waited = Int((ContinuousClock.now - started).seconds.rounded())
        throw BoxstackError(
            .timeout,
            "The SSH server at \(endpoint) did not let boxstack in within \(waited) s (last attempt: \(lastReason)); the box did not finish booting or its sshd is not running."
        )
    }

    /// `waitUntilReachable` without blocking the caller's task; cancelling the task stops the wait.
    public static func waitUntilReachable(
        _ endpoint: SSHEndpoint, deadline: ContinuousClock.Instant,
        options: SSHSessionOptions = SSHSessionOptions(), whileWaiting: @escaping @Sendable () throws -> Void = {}
    ) async throws -> SSHSession {
        try await runCancellably { cancellation in
            try waitUntilReachable(endpoint, deadline: deadline, options: options, cancellation: cancellation, whileWaiting: whileWaiting)
        }
    }

    enum AttemptFailure: Error {
        /// Worth another try; `silent` means the connection opened but the server never spoke.
        case retryable(String, silent: Bool)
        case permanent(BoxstackError)
    }

    private static func attempt(
        _ endpoint: SSHEndpoint, options: SSHSessionOptions, bannerTimeout: Duration, deadline: ContinuousClock.Instant
    ) throws(AttemptFailure) -> SSHSession {
        let pinnedKey: LibSSHKey
        let identity: LibSSHKey
        do {
            pinnedKey = try LibSSHKey.publicKey(fromOpenSSHLine: endpoint.hostKey)
            identity = try LibSSHKey.privateKey(file: endpoint.privateKeyPath)
        } catch {
            throw .permanent(error as? BoxstackError ?? BoxstackError(.invalidData, "\(error)"))
        }
        let remaining = deadline - ContinuousClock.now
        let socket = try ServerSocket.open(
            host: endpoint.host, port: endpoint.port,
            connectTimeout: min(options.requestTimeout, remaining), bannerTimeout: min(bannerTimeout, remaining))

        guard let handle = ssh_new() else {
            Foundation.close(socket)
            throw .permanent(BoxstackError(.internalError, "libssh could not create a session."))
        }
        guard configure(handle, endpoint: endpoint, socket: socket, timeout: min(options.requestTimeout, max(remaining, .seconds(1))))
        else {
            let reason = LibSSH.lastError(handle)
            ssh_free(handle)
            Foundation.close(socket)
            throw .permanent(BoxstackError(.internalError, "libssh rejected the session options: \(reason)."))
        }
        // From ssh_connect on, the session owns the socket and closes it in ssh_free.
        guard ssh_connect(handle) == SSH_OK else {
            let reason = LibSSH.lastError(handle)
            ssh_free(handle)
            throw .retryable("SSH handshake failed: \(reason)", silent: false)
        }
        var offered: OpaquePointer?
        guard ssh_get_server_publickey(handle, &offered) == SSH_OK, let offered else {
            let reason = LibSSH.lastError(handle)
            ssh_disconnect(handle)
            ssh_free(handle)
            throw .retryable("the server sent no host key: \(reason)", silent: false)
        }
        let offeredKey = LibSSHKey(taking: offered)
        guard offeredKey.hasSamePublicKey(as: pinnedKey) else {
            ssh_disconnect(handle)
            ssh_free(handle)
            throw .permanent(
                BoxstackError(
                    .permission,
                    "The SSH server at \(endpoint.host):\(endpoint.port) offered host key \(offeredKey.fingerprint), but the pinned host key is \(pinnedKey.fingerprint); boxstack refuses to log in (another server holds the port, or the box did not install its per-run host key)."
                ))
        }
        let result = ssh_userauth_publickey(handle, nil, identity.handle)
        guard result == SSH_AUTH_SUCCESS.rawValue else {
            let reason = LibSSH.lastError(handle)
            ssh_disconnect(handle)
            ssh_free(handle)
            if result == SSH_AUTH_DENIED.rawValue || result == SSH_AUTH_PARTIAL.rawValue {
                throw .permanent(
                    BoxstackError(
                        .permission,
                        "The SSH server at \(endpoint) refused the login key \(endpoint.privateKeyPath); the box did not install the per-run authorized_keys."
                    ))
            }
            throw .retryable("login failed: \(reason)", silent: false)
        }
        return SSHSession(endpoint: endpoint, options: options, handle: handle)
    }

    private static func configure(_ handle: OpaquePointer, endpoint: SSHEndpoint, socket: Int32, timeout: Duration) -> Bool {
        var port = UInt32(endpoint.port)
        var processConfig = false
        var descriptor = socket
        var verbosity = SSH_LOG_NOLOG
        // Only ed25519 host keys are offered and pinned; no config files or known_hosts are read.
        return ssh_options_set(handle, SSH_OPTIONS_HOST, endpoint.host) == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_PORT, &port) == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_USER, endpoint.user) == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_PROCESS_CONFIG, &processConfig) == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_HOSTKEYS, "ssh-ed25519") == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) == SSH_OK
            && setTimeout(handle, timeout)
            && ssh_options_set(handle, SSH_OPTIONS_FD, &descriptor) == SSH_OK
    }

    @discardableResult
    static func setTimeout(_ handle: OpaquePointer, _ timeout: Duration) -> Bool {
        let microseconds = max(timeout.microseconds, 1000)
        var seconds = Int(microseconds / 1_000_000)
        var remainder = Int(microseconds % 1_000_000)
        return ssh_options_set(handle, SSH_OPTIONS_TIMEOUT, &seconds) == SSH_OK
            && ssh_options_set(handle, SSH_OPTIONS_TIMEOUT_USEC, &remainder) == SSH_OK
    }

    // MARK: - Liveness

    /// Called with the lock held while a channel waits: sends a keepalive when the connection has
    /// been quiet for `keepaliveInterval`, and fails once it has been quiet for `deadPeerTimeout`.
    func checkPeerAlive(_ liveness: inout Liveness) throws {
        let received = socketCounter.pointee.in_bytes
        let now = ContinuousClock.now
        if received != liveness.receivedBytes {
            liveness.receivedBytes = received
            liveness.lastReceived = now
            return
        }
        let quiet = now - liveness.lastReceived
        if quiet >= options.deadPeerTimeout {
            throw BoxstackError(
                .network,
                "The SSH server at \(endpoint) sent nothing for \(Int(quiet.seconds)) s, not even a keepalive reply; the box is hung or gone.")
        }
        guard quiet >= options.keepaliveInterval, now - liveness.lastKeepalive >= options.keepaliveInterval else { return }
        liveness.lastKeepalive = now
        keepalivesSentCount += 1
        // The request waits for the reply while still delivering channel data; bound that wait.
        Self.setTimeout(handle, min(options.keepaliveInterval, options.requestTimeout))
        ssh_send_keepalive(handle)
        Self.setTimeout(handle, options.requestTimeout)
    }

    struct Liveness {
        var receivedBytes: UInt64
        var lastReceived: ContinuousClock.Instant
        var lastKeepalive: ContinuousClock.Instant
    }

    func startLiveness() -> Liveness {
        let now = ContinuousClock.now
        return Liveness(receivedBytes: socketCounter.pointee.in_bytes, lastReceived: now, lastKeepalive: now)
    }

    var isConnectionLost: Bool {
        ssh_is_connected(handle) == 0 || (ssh_get_status(handle) & Int32(SSH_CLOSED_ERROR)) != 0
    }
}

/// Runs a blocking libssh call on a thread of its own; cancelling the calling task sets the
/// `SSHCancellation` that the call polls.
func runCancellably<T: Sendable>(_ body: @escaping @Sendable (SSHCancellation) throws -> T) async throws -> T {
    let cancellation = SSHCancellation()
    return try await withTaskCancellationHandler {
        try await runOnOwnThread { try body(cancellation) }
    } onCancel: {
        cancellation.cancel()
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    var microseconds: Int64 {
        let parts = components
        return parts.seconds * 1_000_000 + parts.attoseconds / 1_000_000_000_000
    }

    var milliseconds: Int32 {
        Int32(clamping: microseconds / 1000)
    }
}
