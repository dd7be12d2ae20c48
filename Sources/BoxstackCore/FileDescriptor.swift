import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes on raw descriptors, where a short write or an interrupted call must be continued.
public enum FileDescriptor {
    /// Writes all of `bytes` to `descriptor`, retrying interrupted and short writes; returns 0 or the errno that stopped it.
    @discardableResult
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Int32 {
        writeAll(bytes) { write(descriptor, $0, $1) }
    }

    /// Writes all of `bytes` at `position` in `descriptor` (`pwrite`, for files with holes), retrying
    /// interrupted and short writes; returns 0 or the errno that stopped it (ENOSPC when nothing more fits).
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, at position: Int64) -> Int32 {
        writeAll(bytes) { pwrite(descriptor, $0, $1, off_t(position) + off_t(bytes.count - $1)) }
    }

    /// Writes all of `bytes` to the socket `descriptor` with `MSG_NOSIGNAL`: a peer that hung up is the
    /// error EPIPE, not a SIGPIPE that ends the process. Returns 0 or the errno that stopped it.
    public static func sendAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Int32 {
        writeAll(bytes) { send(descriptor, $0, $1, Int32(MSG_NOSIGNAL)) }
    }

    /// Calls `write(pointer, remaining)` until every byte is written.
    private static func writeAll(_ bytes: UnsafeRawBufferPointer, _ write: (UnsafeRawPointer, Int) -> Int) -> Int32 {
        guard let base = bytes.baseAddress else { return 0 }
        var offset = 0
        while offset < bytes.count {
            let written = write(base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if written == 0 { return ENOSPC }
            offset += written
        }
        return 0
    }

    /// Writes all of `bytes` to `descriptor`, throwing an error that names `path`.
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
        let failure = writeAll(bytes, to: descriptor)
        guard failure == 0 else { throw BoxstackError(.permission, "cannot write \(path): \(String(cString: strerror(failure))).") }
    }
}
