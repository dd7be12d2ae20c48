import BoxstackCore
import Foundation

/// Opens the TCP connection for a session and waits until the server has spoken.
///
/// QEMU's user-mode network accepts a forwarded connection before the guest listens, then resets
/// it or leaves it silent. Waiting for the first byte (the SSH banner) with our own short timeout
/// tells a booting box from a ready one before libssh starts its handshake.
///
/// A silent connection is one whose SYN the user-mode network keeps sending to a guest that does not
/// answer yet, with a growing backoff (3 s, then 6, 12...): it reaches an sshd that has just started
/// seconds late. So while the first connection stays silent, a fresh one is opened every
/// `probeInterval`, and the first connection whose server speaks is used. The first one is kept to
/// the end, for a server that is only slow to answer.
enum ServerSocket {
    static let probeInterval: Duration = .seconds(1)
    /// Silent connections held at once: the first, and the freshest probes.
    static let maximumPending = 4

    static func open(
        host: String, port: Int, connectTimeout: Duration, bannerTimeout: Duration
    ) throws(SSHSession.AttemptFailure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let lookup = getaddrinfo(host, String(port), &hints, &found)
        guard lookup == 0, let address = found else {
            let reason = lookup == 0 ? "no address" : String(cString: gai_strerror(lookup))
            throw .permanent(BoxstackError(.invalidArgument, "Cannot resolve the SSH host \(host): \(reason)."))
        }
        defer { freeaddrinfo(found) }

        let deadline = ContinuousClock.now + bannerTimeout
        var pending: [Int32] = []
        defer { for descriptor in pending { close(descriptor) } }
        var nextProbe = ContinuousClock.now
        while true {
            let now = ContinuousClock.now
            if now >= nextProbe && now < deadline {
                if pending.count == maximumPending { close(pending.remove(at: 1)) }
                pending.append(try connected(to: address.pointee, timeout: connectTimeout))
                nextProbe = now + probeInterval
            }
            guard !pending.isEmpty else { throw .retryable("the connection was closed before the SSH banner", silent: false) }
            let until = min(nextProbe, deadline)
            guard let (index, spoke) = try firstReadable(pending, timeout: until - ContinuousClock.now) else {
                if ContinuousClock.now >= deadline {
                    throw .retryable("the connection stayed silent for \(Int(bannerTimeout.seconds)) s (no SSH banner)", silent: true)
                }
                continue
            }
            let descriptor = pending.remove(at: index)
            guard spoke else {
                close(descriptor)
                continue
            }
            var noDelay: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
            return descriptor
        }
    }

    /// A new connection to `address`.
    private static func connected(to address: addrinfo, timeout: Duration) throws(SSHSession.AttemptFailure) -> Int32 {
        let descriptor = socket(address.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw .permanent(BoxstackError(.internalError, "Cannot create a socket: \(String(cString: strerror(errno)))."))
        }
        do {
            try connect(descriptor, to: address, timeout: timeout)
            return descriptor
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// The first of `descriptors` with something to read within `timeout`, and whether that is a byte
    /// (the server spoke) rather than the end of the connection; nil when none became readable.
    private static func firstReadable(_ descriptors: [Int32], timeout: Duration) throws(SSHSession.AttemptFailure) -> (Int, Bool)? {
        var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let ready = poll(&entries, nfds_t(entries.count), max(timeout, .zero).milliseconds)
        if ready < 0 {
            if errno == EINTR { return nil }
            throw .retryable(String(cString: strerror(errno)), silent: false)
        }
        guard let index = entries.firstIndex(where: { $0.revents != 0 }) else { return nil }
        var byte: UInt8 = 0
        return (index, recv(descriptors[index], &byte, 1, Int32(MSG_PEEK)) > 0)
    }

    private static func connect(_ descriptor: Int32, to address: addrinfo, timeout: Duration) throws(SSHSession.AttemptFailure) {
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(descriptor, F_SETFL, flags) }
        if Glibc.connect(descriptor, address.ai_addr, address.ai_addrlen) == 0 { return }
        guard errno == EINPROGRESS else { throw .retryable(String(cString: strerror(errno)), silent: false) }
        guard try waitFor(Int16(POLLOUT), on: descriptor, timeout: timeout) else {
            throw .retryable("TCP connect timed out after \(Int(timeout.seconds)) s", silent: true)
        }
        var problem: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &problem, &length)
        if problem != 0 { throw .retryable(String(cString: strerror(problem)), silent: false) }
    }

    /// Polls one descriptor, retrying on EINTR; false when the timeout passed.
    private static func waitFor(_ events: Int16, on descriptor: Int32, timeout: Duration) throws(SSHSession.AttemptFailure) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let remaining = max(deadline - ContinuousClock.now, .zero)
            let ready = poll(&entry, 1, remaining.milliseconds)
            if ready > 0 { return true }
            if ready == 0 { return false }
            if errno != EINTR { throw .retryable(String(cString: strerror(errno)), silent: false) }
        }
    }
}
