import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Files replaced in one step: written under a temporary name in the same directory, then renamed
/// into place, so readers see the old content or the new one, never a half-written file.
public enum AtomicFile {
    /// Creates a temporary file with `mode` (before any byte is written) next to `path`, lets `write`
    /// fill it by its path, and renames it to `path`; on any failure the temporary is removed.
    public static func replace(_ path: String, mode: mode_t = 0o644, write: (String) throws -> Void) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(directory.isEmpty ? "." : directory)/.\((path as NSString).lastPathComponent).\(UUID().uuidString).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw BoxstackError(.permission, "cannot create \(temporary): \(String(cString: strerror(errno))).")
        }
        fchmod(descriptor, mode)
        close(descriptor)
        do {
            try write(temporary)
            guard rename(temporary, path) == 0 else {
                throw BoxstackError(.permission, "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno))).")
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }
}

extension Data {
    /// Replaces the file at `path` with this data in one step (see `AtomicFile`).
    public func writeAtomically(to path: String, mode: Int = 0o644) throws {
        try AtomicFile.replace(path, mode: mode_t(mode)) { temporary in
            guard let handle = FileHandle(forWritingAtPath: temporary) else {
                throw BoxstackError(.permission, "cannot write \(temporary).")
            }
            defer { try? handle.close() }
            try handle.write(contentsOf: self)
        }
    }
}
