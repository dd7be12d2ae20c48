import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Files replaced in one step: written under a temporary name in the same directory, then renamed
/// into place, so readers see the old content or the new one, never a half-written file.
public enum AtomicFile {
    /// A temporary name beside a final path. Whoever makes the content writes `temporaryPath` (this
    /// process, libvirt, `qemu-img`, a download), then `commit()` renames it to `path`; on failure
    /// `discard()` removes it. Several staged files committed one after the other publish a set whose
    /// last member (a checksum, a record) tells readers the rest is complete.
    public struct Staged: Sendable {
        public let path: String
        public let temporaryPath: String

        /// With `create`, the temporary file exists (empty, with `mode`) before any byte is written, so its
        /// permissions never depend on the writer; without it, only the name is reserved, for writers that
        /// insist on creating the file themselves.
        public init(for path: String, mode: mode_t = 0o644, create: Bool = true) throws {
            let directory = (path as NSString).deletingLastPathComponent
            self.path = path
            self.temporaryPath = "\(directory.isEmpty ? "." : directory)/.\((path as NSString).lastPathComponent).\(UUID().uuidString).tmp"
            guard create else { return }
            let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard descriptor >= 0 else {
                throw BoxstackError(.permission, "cannot create \(temporaryPath): \(String(cString: strerror(errno))).")
            }
            fchmod(descriptor, mode)
            close(descriptor)
        }

        /// Renames the temporary file to `path`; the temporary is removed when that fails.
        public func commit() throws {
            guard rename(temporaryPath, path) == 0 else {
                let reason = String(cString: strerror(errno))
                discard()
                throw BoxstackError(.permission, "cannot rename \(temporaryPath) to \(path): \(reason).")
            }
        }

        public func discard() {
            unlink(temporaryPath)
        }
    }

    /// Lets `write` fill a staged file by its path and commits it to `path`; on any failure the temporary
    /// is removed and `path` is left as it was.
    public static func replace(_ path: String, mode: mode_t = 0o644, write: (String) throws -> Void) throws {
        let staged = try Staged(for: path, mode: mode)
        do {
            try write(staged.temporaryPath)
            try staged.commit()
        } catch {
            staged.discard()
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
