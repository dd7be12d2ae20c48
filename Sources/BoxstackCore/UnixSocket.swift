import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A stream Unix socket's descriptor: a listening one the controller binds (and hands to a child, as
/// virtiofsd's standard input), or one connected to a socket another process listens on (QEMU's
/// character devices). The owner closes it.
public struct UnixSocket: Sendable {
    public let descriptor: Int32

    /// Binds and listens at `path`, replacing a stale socket file there.
    public static func listen(at path: String) throws -> UnixSocket {
        var address = try socketAddress(path)
        unlink(path)
        let socket = try makeSocket()
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket.descriptor, $0, addressLength) == 0 }
        }
        guard bound, Glibc.listen(socket.descriptor, 1) == 0 else {
            let reason = String(cString: strerror(errno))
            socket.close()
            throw BoxstackError(.permission, "cannot listen on \(path): \(reason).")
        }
        return socket
    }

    /// Connects to the socket at `path`; nil while nobody listens there yet (no file, or refused).
    public static func connect(to path: String) throws -> UnixSocket? {
        var address = try socketAddress(path)
        let socket = try makeSocket()
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.descriptor, $0, addressLength) == 0 }
        }
        if connected { return socket }
        let failure = errno
        socket.close()
        if failure == ENOENT || failure == ECONNREFUSED { return nil }
        throw BoxstackError(.permission, "cannot connect to \(path): \(String(cString: strerror(failure))).")
    }

    public func close() { Glibc.close(descriptor) }

    private static let addressLength = socklen_t(MemoryLayout<sockaddr_un>.size)

    private static func socketAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw BoxstackError(
                .invalidArgument, "the socket path \(path) is longer than \(capacity - 1) bytes; use a shorter cache or runtime directory.")
        }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (offset, byte) in path.utf8.enumerated() { buffer[offset] = byte }
        }
        return address
    }

    private static func makeSocket() throws -> UnixSocket {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw BoxstackError(.permission, "cannot create a Unix socket: \(String(cString: strerror(errno))).") }
        return UnixSocket(descriptor: descriptor)
    }
}
