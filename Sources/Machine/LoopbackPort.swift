import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Ports on 127.0.0.1.
public enum LoopbackPort {
    /// A port the OS considers free right now: bind 127.0.0.1:0, read the port, close.
    public static func ephemeral() throws -> Int {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else {
            throw BoxstackError(.network, "cannot open a socket: \(String(cString: strerror(errno))).")
        }
        defer { close(socketDescriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(socketDescriptor, socketAddress, length) == 0 && getsockname(socketDescriptor, socketAddress, &length) == 0
            }
        }
        guard bound else {
            throw BoxstackError(.network, "cannot bind a port on 127.0.0.1: \(String(cString: strerror(errno))).")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
