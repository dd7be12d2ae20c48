import BoxstackCore
import Foundation

/// Opens the TCP connection for a session and waits until the server has spoken.
///
/// QEMU's user-mode network accepts a forwarded connection before the guest listens, then resets
/// it or leaves it silent. Waiting for the first byte (the SSH banner) with our own short timeout
/// tells a booting box from a ready one before libssh starts its handshake.
enum ServerSocket {
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

        let descriptor = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw .permanent(BoxstackError(.internalError, "Cannot create a socket: \(String(cString: strerror(errno)))."))
        }
        do {
            try connect(descriptor, to: address.pointee, timeout: connectTimeout)
            try awaitFirstByte(descriptor, timeout: bannerTimeout)
            var noDelay: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
            return descriptor
        } catch {
            close(descriptor)
            throw error
        }
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

    private static func awaitFirstByte(_ descriptor: Int32, timeout: Duration) throws(SSHSession.AttemptFailure) {
        guard try waitFor(Int16(POLLIN), on: descriptor, timeout: timeout) else {
            throw .retryable("the connection stayed silent for \(Int(timeout.seconds)) s (no SSH banner)", silent: true)
        }
        var byte: UInt8 = 0
        let peeked = recv(descriptor, &byte, 1, Int32(MSG_PEEK))
        if peeked == 0 { throw .retryable("the connection was closed before the SSH banner", silent: false) }
        if peeked < 0 { throw .retryable(String(cString: strerror(errno)), silent: false) }
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
