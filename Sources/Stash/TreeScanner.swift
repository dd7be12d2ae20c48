import BoxstackCore
import CLibC
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One scanned entry: its comparable metadata plus the `stat` the layer writer needs.
struct ScannedEntry {
    var entry: TreeEntry
    var status: stat
}

/// Walks a root tree on this host with `openat`/`fstatat`, in layer order, recording everything a
/// `TreeManifest` compares. It skips the contents of `dev`, `proc`, `sys` and `run` at the top (as
/// KIWI's stash does) and stops at the first path the user cannot read.
struct TreeScanner {
    let root: String
    static let excludedTopDirectories: Set<String> = ["dev", "proc", "sys", "run"]

    private let checkReadable = geteuid() != 0

    init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    func scan() throws -> [ScannedEntry] {
        let descriptor = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw unreadable(root, errno) }
        var results: [ScannedEntry] = []
        var firstPathOfInode: [InodeKey: String] = [:]
        try scanDirectory(descriptor, relative: "", into: &results, inodes: &firstPathOfInode)
        return results
    }

    private struct InodeKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private func unreadable(_ path: String, _ code: Int32) -> BoxstackError {
        BoxstackError(
            .permission,
            "cannot read \(path) (\(String(cString: strerror(code)))); stash a tree you can read: run as root, or stash from the box with --keep-root."
        )
    }

    /// Scans the directory open as `descriptor` (closing it), appending entries below `relative`.
    private func scanDirectory(
        _ descriptor: Int32, relative: String, into results: inout [ScannedEntry], inodes: inout [InodeKey: String]
    ) throws {
        guard let directory = fdopendir(descriptor) else {
            close(descriptor)
            throw unreadable(absolute(relative), errno)
        }
        defer { closedir(directory) }
        var names: [[UInt8]] = []
        errno = 0
        while let item = readdir(directory) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        if errno != 0 { throw unreadable(absolute(relative), errno) }
        names.sort { $0.lexicographicallyPrecedes($1) }
        let isTop = relative.isEmpty
        for nameBytes in names {
            let name = String(decoding: nameBytes, as: UTF8.self)
            let path = isTop ? name : relative + "/" + name
            var status = stat()
            guard fstatat(descriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { throw unreadable(absolute(path), errno) }
            var entry = try makeEntry(path: path, name: name, directory: descriptor, status: status)
            if entry.kind != .directory, status.st_nlink > 1 {
                let key = InodeKey(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
                if let first = inodes[key] {
                    entry.hardlinkGroup = first
                } else {
                    inodes[key] = path
                    entry.hardlinkGroup = path
                }
            }
            results.append(ScannedEntry(entry: entry, status: status))
            if entry.kind == .directory {
                if isTop, TreeScanner.excludedTopDirectories.contains(name) { continue }
                let child = openat(descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw unreadable(absolute(path), errno) }
                try scanDirectory(child, relative: path, into: &results, inodes: &inodes)
            } else if entry.kind == .file, checkReadable, faccessat(descriptor, name, R_OK, AT_EACCESS) != 0 {
                throw unreadable(absolute(path), errno)
            }
        }
    }

    private func absolute(_ relative: String) -> String { relative.isEmpty ? root : root + "/" + relative }

    private func makeEntry(path: String, name: String, directory: Int32, status: stat) throws -> TreeEntry {
        let kind: TreeEntry.Kind
        switch status.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        default: kind = .file
        }
        var target = ""
        if kind == .symlink {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlinkat(directory, name, &buffer, buffer.count - 1)
            guard length >= 0 else { throw unreadable(absolute(path), errno) }
            target = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let isDevice = kind == .characterDevice || kind == .blockDevice
        return TreeEntry(
            path: path, kind: kind, mode: UInt32(status.st_mode) & 0o7777, uid: status.st_uid, gid: status.st_gid,
            size: kind == .file || kind == .symlink ? Int64(status.st_size) : 0,
            mtimeNanoseconds: Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec),
            linkTarget: target, rdev: isDevice ? UInt64(status.st_rdev) : 0,
            xattrDigest: kind == .symlink ? "" : xattrDigest(absolute(path)))
    }

    /// A digest over all extended attributes (names and values; POSIX ACLs are among them), or "".
    private func xattrDigest(_ path: String) -> String {
        let listSize = llistxattr(path, nil, 0)
        guard listSize > 0 else { return "" }
        var list = [CChar](repeating: 0, count: listSize)
        let actual = llistxattr(path, &list, listSize)
        guard actual > 0 else { return "" }
        var names = list[0..<actual].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        names.sort()
        var hasher = SHA256()
        for name in names {
            hasher.update(data: Data(name.utf8 + [0]))
            let valueSize = lgetxattr(path, name, nil, 0)
            if valueSize > 0 {
                var value = [UInt8](repeating: 0, count: valueSize)
                let read = lgetxattr(path, name, &value, valueSize)
                if read > 0 { hasher.update(data: value[0..<read]) }
            }
            hasher.update(data: [0])
        }
        return hasher.finalize().hexString
    }
}
