import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An advisory `flock` on a file, held until `unlock()` or deinit.
///
/// Used so that concurrent boxstack processes never download into or prune the same cache entry at once.
public final class FileLock: @unchecked Sendable {
    private let descriptor: Int32
    public let path: String

    /// Opens (creating) `path` and blocks until the exclusive lock is held.
    public init(path: String, shared: Bool = false) throws {
        self.path = path
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw BoxstackError(.permission, "cannot open lock file \(path): \(String(cString: strerror(errno))).")
        }
        while flock(descriptor, shared ? LOCK_SH : LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw BoxstackError(.busy, "cannot lock \(path): \(reason).")
        }
    }

    /// Takes the lock only if nobody holds it; nil when it is held elsewhere.
    public static func attempt(path: String) throws -> FileLock? {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw BoxstackError(.permission, "cannot open lock file \(path): \(String(cString: strerror(errno))).")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        return FileLock(path: path, descriptor: descriptor)
    }

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        // Unlocked explicitly: a child forked by another thread holds a copy of the descriptor until it
        // execs, and a close alone would leave the lock held by that copy for that long.
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
