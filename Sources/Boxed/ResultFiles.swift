import BoxstackCore
import CLibC
import Foundation
import Sharing

#if canImport(Glibc)
    import Glibc
#endif

/// Gives the files the box wrote into a share the modes they have in the box.
///
/// 9p in `mapped` mode creates every file as the host user's with mode 0600 and keeps the guest's
/// mode in the `user.virtfs.mode` xattr; users expect an image to be 0644 like any file they make.
enum ResultFiles {
    static func normalizeModes(in directory: String, sharing: ShareKind) throws {
        guard sharing == .ninePee else { return }
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return }
        var paths = [directory]
        while let relative = enumerator.nextObject() as? String { paths.append(directory + "/" + relative) }
        for path in paths {
            var mode: UInt32 = 0
            let size = getxattr(path, "user.virtfs.mode", &mode, MemoryLayout<UInt32>.size)
            guard size == MemoryLayout<UInt32>.size else { continue }
            // Owner read/write always: the files are the user's to keep, move and delete.
            let permissions = mode_t(mode & 0o777) | 0o600 | (mode & 0o40000 != 0 ? 0o100 : 0)
            chmod(path, permissions)
            for name in ["user.virtfs.mode", "user.virtfs.uid", "user.virtfs.gid", "user.virtfs.rdev"] {
                removexattr(path, name)
            }
        }
    }

    /// True when a file in `directory` other than boxstack's own (boxstack.log, a derived build's merged
    /// description) was written at or after `start`.
    static func hasNewResults(in directory: String, since start: Date) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.contains { name in
            guard name != "boxstack.log", name != BoxedDerived.mergedFileName, !name.hasPrefix("."),
                let modified = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name))?[.modificationDate] as? Date
            else { return false }
            return modified.timeIntervalSince(start) >= -5
        }
    }
}
