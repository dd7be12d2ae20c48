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
    /// owner access to directories on the way where needed. Holds one descriptor per level.
    public static func remove(_ name: String, in parent: Int32, isDirectory: Bool) throws(Failure) {
        if !isDirectory {
            if unlinkat(parent, name, 0) == 0 || errno == ENOENT { return }
            guard errno == EISDIR else { throw Failure(code: errno, path: name) }
        }
        struct Level {
            var descriptor: Int32
            var name: String
            var pending: [String]
        }
        var levels: [Level] = []
        defer { for level in levels { close(level.descriptor) } }
        func enter(_ name: String, in directory: Int32, path: String) throws(Failure) {
            let descriptor = openat(directory, name, BOXSTACK_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { throw Failure(code: errno, path: path) }
            var info = stat()
            if geteuid() != 0, fstat(descriptor, &info) == 0, info.st_mode & 0o700 != 0o700 {
                chmod("/proc/self/fd/\(descriptor)", 0o700)
            }
            do throws(Failure) { levels.append(Level(descriptor: descriptor, name: name, pending: try names(in: descriptor))) } catch {
                close(descriptor)
                throw Failure(code: error.code, path: path)
            }
        }
        func path() -> String { levels.map(\.name).joined(separator: "/") }
        try enter(name, in: parent, path: name)
        while let top = levels.last {
            if let child = levels[levels.count - 1].pending.popLast() {
                if unlinkat(top.descriptor, child, 0) == 0 || errno == ENOENT { continue }
                guard errno == EISDIR else { throw Failure(code: errno, path: path() + "/" + child) }
                try enter(child, in: top.descriptor, path: path() + "/" + child)
                continue
            }
            levels.removeLast()
            close(top.descriptor)
            let container = levels.last?.descriptor ?? parent
            guard unlinkat(container, top.name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                throw Failure(code: errno, path: path() + (levels.isEmpty ? "" : "/") + top.name)
            }
        }
    }
}
