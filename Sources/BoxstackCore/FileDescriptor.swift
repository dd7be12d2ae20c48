import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes on raw descriptors, where a short write or an interrupted call must be continued.
public enum FileDescriptor {
    /// Writes all of `bytes` to `descriptor`, retrying interrupted and short writes; returns 0 or the errno that stopped it.
    @discardableResult
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Int32 {
        guard let base = bytes.baseAddress else { return 0 }
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
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
