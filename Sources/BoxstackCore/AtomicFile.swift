import Foundation

extension Data {
    /// Writes through a temporary file in the same directory and renames it into place,
    /// so readers see the old content or the new one, never a half-written file.
    public func writeAtomically(to path: String, mode: Int = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(directory)/.\((path as NSString).lastPathComponent).\(UUID().uuidString).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: self, attributes: [.posixPermissions: mode])
        else { throw BoxstackError(.permission, "cannot write \(temporary).") }
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BoxstackError(.permission, "cannot rename \(temporary) to \(path): \(reason).")
        }
    }
}
