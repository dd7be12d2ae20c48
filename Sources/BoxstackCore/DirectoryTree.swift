import CLibC
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Listing and removing directory trees through descriptors: nothing is resolved by path, no
/// symlink is followed, and path length does not matter.
public enum DirectoryTree {
    /// A failed step, with the errno and the path (relative to where the operation started).
    public struct Failure: Error {
        public var code: Int32
        public var path: String
    }

    /// The names in the directory `descriptor` (any descriptor of it, `BOXSTACK_O_PATH` included), without `.` and `..`.
    public static func names(in descriptor: Int32) throws(Failure) -> [String] {
        let listing = openat(descriptor, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listing >= 0, let stream = fdopendir(listing) else {
            let code = errno
            throw Failure(code: code, path: ".")
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let item = readdir(stream) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes `name` in the directory `parent` (a whole tree when it is a directory), giving the
    /// owner access to directories on the way where needed. Holds one directory open at a time (it
    /// climbs back through `..`), so the depth of the tree does not matter.
    public static func remove(_ name: String, in parent: Int32, isDirectory: Bool) throws(Failure) {
        if !isDirectory {
            if unlinkat(parent, name, 0) == 0 || errno == ENOENT { return }
            guard errno == EISDIR else { throw Failure(code: errno, path: name) }
        }
        struct Level {
            var name: String
            var pending: [String]
        }
        var levels: [Level] = []
        var current: Int32 = -1
        defer { if current >= 0 { close(current) } }
        func path() -> String { levels.map(\.name).joined(separator: "/") }
        func enter(_ name: String, in directory: Int32) throws(Failure) {
            let descriptor = openat(directory, name, BOXSTACK_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { throw Failure(code: errno, path: path() + "/" + name) }
            var info = stat()
            if geteuid() != 0, fstat(descriptor, &info) == 0, info.st_mode & 0o700 != 0o700 {
                chmod("/proc/self/fd/\(descriptor)", 0o700)
            }
            let children: [String]
            do throws(Failure) { children = try names(in: descriptor) } catch {
                close(descriptor)
                throw Failure(code: error.code, path: path() + "/" + name)
            }
            if current >= 0 { close(current) }
            current = descriptor
            levels.append(Level(name: name, pending: children))
        }
        try enter(name, in: parent)
        while !levels.isEmpty {
            if let child = levels[levels.count - 1].pending.popLast() {
                if unlinkat(current, child, 0) == 0 || errno == ENOENT { continue }
                guard errno == EISDIR else { throw Failure(code: errno, path: path() + "/" + child) }
                try enter(child, in: current)
                continue
            }
            let done = levels.removeLast()
            let container: Int32
            if levels.isEmpty {
                container = parent
            } else {
                container = openat(current, "..", BOXSTACK_O_PATH | O_DIRECTORY | O_CLOEXEC)
                guard container >= 0 else { throw Failure(code: errno, path: path()) }
            }
            close(current)
            current = levels.isEmpty ? -1 : container
            guard unlinkat(container, done.name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                throw Failure(code: errno, path: path() + (levels.isEmpty ? "" : "/") + done.name)
            }
        }
    }
}
