import BoxstackCore
import CLibArchive
import CLibC
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What an unpack could not restore (only ever non-zero when not running as root).
public struct UnpackReport: Sendable, Equatable {
    /// Entries written (whiteouts not counted).
    public var entries = 0
    /// Entries whose owner could not be set because the user is not root.
    public var ownersNotRestored = 0
    /// Device nodes that could not be created.
    public var devicesNotCreated = 0
    /// Other metadata that could not be restored (e.g. extended attributes the user may not set), with their entry.
    public var warnings: [String] = []

    /// One line per kind of loss, for the user; empty when everything was restored.
    public var summary: [String] {
        var lines: [String] = []
        if ownersNotRestored > 0 { lines.append("could not restore the owners of \(ownersNotRestored) entries (run as root to keep them)") }
        if devicesNotCreated > 0 { lines.append("could not create \(devicesNotCreated) device nodes (run as root to create them)") }
        if !warnings.isEmpty {
            lines.append("\(warnings.count) entries lost some metadata, first: \(warnings[0])")
        }
        return lines
    }
}

/// Builds, in an empty directory, the tree a stack of layers means (`LayerStackRules` decides it, as
/// it does for the stack export); nothing outside the directory can change.
///
/// Layers are read top first, each once, and only the entries that end up in the tree are written,
/// so whiteouts and opaque markers never delete anything. Containment is the kernel's: every path is
/// opened below the root's descriptor with `openat2(2)` and `RESOLVE_IN_ROOT`
/// (`ContainedDirectory`), and every change (create, write, link, owner, mode, times, extended
/// attributes) is made relative to a directory descriptor obtained that way, on a final name that is
/// never followed. So a symlink in the tree resolves inside it as it would in a container, and no
/// entry order, missing directory or path length leads outside. libarchive only reads the tar; it
/// writes nothing.
final class TreeUnpacker {
    private let root: ContainedDirectory
    private let isRoot = geteuid() == 0
    private var rules = LayerStackRules()
    private var report = UnpackReport()
    /// Modes and times of directory entries, set once everything is in place, deepest first.
    private var directoryMetadata: [(path: String, mode: mode_t, times: [timespec])] = []
    /// The parent directory of the last entry, kept open while entries share it.
    private var cachedParent: (path: String, descriptor: Int32)?

    init(root: String) throws {
        self.root = try ContainedDirectory(path: root)
    }

    deinit { forgetParent() }

    // MARK: Layers

    /// Builds the tree of `layers` (bottom first); their digests are checked as they stream.
    func unpack(_ layers: [StackedLayer]) throws -> UnpackReport {
        for layer in layers.reversed() { try apply(layer) }
        forgetParent()
        for item in directoryMetadata.sorted(by: { depth($0.path) > depth($1.path) }) {
            guard let descriptor = try? root.open(components(item.path), flags: BOXSTACK_O_PATH | O_DIRECTORY | O_NOFOLLOW) else { continue }
            defer { close(descriptor) }
            if chmod(Self.procPath(descriptor), item.mode) != 0 || utimensat(AT_FDCWD, Self.procPath(descriptor), item.times, 0) != 0 {
                report.warnings.append("\(Terminal.quoted(item.path)): cannot set its mode and times: \(String(cString: strerror(errno)))")
            }
        }
        return report
    }

    private func apply(_ stacked: StackedLayer) throws {
        let refuseEntry = { (refusal: LayerStackRules.Refusal, layer: LayerReader) in self.refuse(refusal.name, layer, refusal.reason) }
        try rules.read(
            stacked, refuse: refuseEntry,
            each: { entry, _, decision, layer in
                let raw = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
                switch decision {
                case .nothing:
                    return
                case .root:
                    let descriptor: Int32
                    do throws(ContainedDirectory.PathError) { descriptor = try root.open([], flags: BOXSTACK_O_PATH | O_DIRECTORY) } catch {
                        throw refuse(raw, layer, error)
                    }
                    defer { close(descriptor) }
                    try setDirectoryMetadata(entry, descriptor: descriptor, path: "", raw: raw, layer: layer)
                case .entry(let path):
                    try write(entry, path: path, raw: raw, layer: layer)
                    report.entries += 1
                case .link(let path, let target):
                    try link(path, to: target, raw: raw, layer: layer)
                    report.entries += 1
                case .carrier(let path, let targetOrdinal):
                    // A hard-link target a higher layer hid: the only case where a layer is read twice.
                    var readers = LayerReaders(layers: [stacked])
                    let (target, reader) = try readers.entry(layer: 0, ordinal: targetOrdinal)
                    try write(target, path: path, raw: raw, layer: reader)
                    report.entries += 1
                }
            })
    }

    private func refuse(_ name: String, _ layer: LayerReader, _ reason: String) -> BoxstackError {
        BoxstackError(
            .invalidData,
            "refusing the entry \(Terminal.quoted(name)) of \(layer.description): \(reason); the unpack into \(root.path) stopped there.")
    }

    private func failed(_ name: String, _ layer: LayerReader, _ action: String, code: Int32 = errno) -> BoxstackError {
        BoxstackError(
            .permission,
            "cannot \(action) \(Terminal.quoted(name)) of \(layer.description) in \(root.path): \(String(cString: strerror(code))).")
    }

    private func refuse(_ name: String, _ layer: LayerReader, _ error: ContainedDirectory.PathError) -> BoxstackError {
        switch error.code {
        case ENOTDIR: refuse(name, layer, "\(Terminal.quoted(error.path)) is not a directory")
        case ELOOP: refuse(name, layer, "too many levels of symlinks below \(Terminal.quoted(error.path))")
        case ENAMETOOLONG: refuse(name, layer, "a name in \(Terminal.quoted(error.path)) is too long")
        default: failed(name, layer, "resolve \(Terminal.quoted(error.path)) for", code: error.code)
        }
    }

    private func write(_ entry: OpaquePointer, path: String, raw: String, layer: LayerReader) throws {
        let (parentPath, name) = LayerPath.split(path)
        let parent = try parentDirectory(parentPath, raw: raw, layer: layer)
        let type = archive_entry_filetype(entry)
        var existing = stat()
        let exists = fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0
        let existingIsDirectory = exists && existing.st_mode & S_IFMT == S_IFDIR

        if exists, !(existingIsDirectory && type == ArchiveFileType.directory) {
            // Another path of the tree reached the same name through a symlink; the later entry wins,
            // as in tar (a directory goes with its subtree).
            try remove(name, in: parent, isDirectory: existingIsDirectory, raw: raw, layer: layer)
        }
        switch type {
        case ArchiveFileType.directory:
            if !existingIsDirectory, mkdirat(parent, name, 0o700) != 0 { throw failed(raw, layer, "create the directory") }
            let descriptor = openat(parent, name, BOXSTACK_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { throw failed(raw, layer, "open the directory") }
            defer { close(descriptor) }
            try setDirectoryMetadata(entry, descriptor: descriptor, path: path, raw: raw, layer: layer)
        case ArchiveFileType.regular:
            try writeFile(entry, name: name, in: parent, raw: raw, layer: layer)
        case ArchiveFileType.symlink:
            guard let target = archive_entry_symlink(entry) else { throw refuse(raw, layer, "the symlink has no target") }
            guard symlinkat(target, parent, name) == 0 else { throw failed(raw, layer, "create the symlink") }
            try setNodeMetadata(entry, name: name, in: parent, raw: raw, layer: layer, isSymlink: true)
        case ArchiveFileType.characterDevice, ArchiveFileType.blockDevice, ArchiveFileType.fifo:
            guard mknodat(parent, name, type | 0o600, archive_entry_rdev(entry)) == 0 else {
                if !isRoot, errno == EPERM, type != ArchiveFileType.fifo {
                    report.devicesNotCreated += 1
                    return
                }
                throw failed(raw, layer, "create the node")
            }
            try setNodeMetadata(entry, name: name, in: parent, raw: raw, layer: layer, isSymlink: false)
        default:
            report.warnings.append("\(Terminal.quoted(raw)): sockets and unknown file types are not unpacked")
        }
    }

    // MARK: Files

    private func writeFile(_ entry: OpaquePointer, name: String, in parent: Int32, raw: String, layer: LayerReader) throws {
        let file = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw failed(raw, layer, "create") }
        var closed = false
        defer { if !closed { close(file) } }
        try layer.readData { block, offset in
            let failure = FileDescriptor.writeAll(block, to: file, at: offset)
            guard failure == 0 else { throw failed(raw, layer, "write", code: failure) }
        }
        // Sparse files end in a hole that no data block reaches.
        let size = archive_entry_size(entry)
        if size > 0, ftruncate(file, off_t(size)) != 0 { throw failed(raw, layer, "write") }
        try setOwner(entry, raw: raw, layer: layer) { fchown(file, $0, $1) }
        guard fchmod(file, mode_t(archive_entry_perm(entry))) == 0 else { throw failed(raw, layer, "set the mode of") }
        setExtendedAttributes(entry, raw: raw) { fsetxattr(file, $0, $1, $2, 0) }
        var times = Self.times(entry)
        guard futimens(file, &times) == 0 else { throw failed(raw, layer, "set the times of") }
        closed = true
        // Deferred write errors (a full disk on some file systems) surface at close.
        guard close(file) == 0 else { throw failed(raw, layer, "write") }
    }

    /// A hard link at `path` to `target`, a path this layer put in the tree.
    private func link(_ path: String, to target: String, raw: String, layer: LayerReader) throws {
        guard !target.isEmpty else { throw refuse(raw, layer, "it is a hard link to the root directory") }
        let (parentPath, name) = LayerPath.split(path)
        let parent = try parentDirectory(parentPath, raw: raw, layer: layer)
        let (targetParentPath, targetName) = LayerPath.split(target)
        let targetParent: Int32
        do throws(ContainedDirectory.PathError) {
            targetParent = try root.openDirectory(components(targetParentPath), creatingWithMode: nil)
        } catch {
            throw refuse(raw, layer, "its hard link target \(Terminal.quoted(target)) does not exist")
        }
        defer { close(targetParent) }
        var info = stat()
        guard fstatat(targetParent, targetName, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw refuse(raw, layer, "its hard link target \(Terminal.quoted(target)) does not exist")
        }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw refuse(raw, layer, "its hard link target is a directory") }
        var existing = stat()
        if fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 {
            if existing.st_ino == info.st_ino, existing.st_dev == info.st_dev { return }
            try remove(name, in: parent, isDirectory: existing.st_mode & S_IFMT == S_IFDIR, raw: raw, layer: layer)
        }
        guard linkat(targetParent, targetName, parent, name, 0) == 0 else { throw failed(raw, layer, "create the hard link") }
    }

    // MARK: Metadata

    private func setDirectoryMetadata(_ entry: OpaquePointer, descriptor: Int32, path: String, raw: String, layer: LayerReader) throws {
        let proc = Self.procPath(descriptor)
        try setOwner(entry, raw: raw, layer: layer) { chown(proc, $0, $1) }
        setExtendedAttributes(entry, raw: raw) { setxattr(proc, $0, $1, $2, 0) }
        directoryMetadata.append((path, mode_t(archive_entry_perm(entry)), Self.times(entry)))
        // The directory's final mode comes at the end of the layer; until then its owner may write in it.
        if !isRoot { chmod(proc, 0o700) }
    }

    private func setNodeMetadata(_ entry: OpaquePointer, name: String, in parent: Int32, raw: String, layer: LayerReader, isSymlink: Bool) throws {
        try setOwner(entry, raw: raw, layer: layer) { fchownat(parent, name, $0, $1, AT_SYMLINK_NOFOLLOW) }
        if !isSymlink, fchmodat(parent, name, mode_t(archive_entry_perm(entry)), 0) != 0 { throw failed(raw, layer, "set the mode of") }
        // lsetxattr on the name below the (already contained) directory: the name itself is not followed.
        let path = Self.procPath(parent) + "/" + name
        setExtendedAttributes(entry, raw: raw) { lsetxattr(path, $0, $1, $2, 0) }
        let times = Self.times(entry)
        utimensat(parent, name, times, AT_SYMLINK_NOFOLLOW)
    }

    /// Sets the entry's numeric owner as root; as another user, counts owners that differ from the user's.
    private func setOwner(_ entry: OpaquePointer, raw: String, layer: LayerReader, _ change: (uid_t, gid_t) -> Int32) throws {
        let uid = uid_t(truncatingIfNeeded: archive_entry_uid(entry))
        let gid = gid_t(truncatingIfNeeded: archive_entry_gid(entry))
        guard isRoot else {
            if uid != getuid() || gid != getgid() { report.ownersNotRestored += 1 }
            return
        }
        guard change(uid, gid) == 0 else {
            // Root of a user namespace that does not map this owner (EINVAL), or without CAP_CHOWN (EPERM).
            guard errno == EINVAL || errno == EPERM else { throw failed(raw, layer, "set the owner of") }
            report.ownersNotRestored += 1
            return
        }
    }

    /// Extended attributes and POSIX ACLs (as the `system.posix_acl_*` attributes the kernel keeps them in).
    private func setExtendedAttributes(_ entry: OpaquePointer, raw: String, _ set: (String, UnsafeRawPointer?, Int) -> Int32) {
        var attributes: [(String, [UInt8])] = []
        if archive_entry_xattr_reset(entry) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK, let name {
                attributes.append((String(cString: name), value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            }
        }
        for (type, attribute) in [
            (ARCHIVE_ENTRY_ACL_TYPE_ACCESS, "system.posix_acl_access"), (ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, "system.posix_acl_default"),
        ] {
            if let value = PosixACL.attribute(entry, type: type), !attributes.contains(where: { $0.0 == attribute }) {
                attributes.append((attribute, value))
            }
        }
        for (name, value) in attributes {
            let status = value.withUnsafeBytes { set(name, $0.baseAddress, $0.count) }
            if status != 0 {
                report.warnings.append("\(Terminal.quoted(raw)): cannot set \(name): \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func times(_ entry: OpaquePointer) -> [timespec] {
        let modification = timespec(tv_sec: Int(archive_entry_mtime(entry)), tv_nsec: Int(archive_entry_mtime_nsec(entry)))
        let access =
            archive_entry_atime_is_set(entry) != 0
            ? timespec(tv_sec: Int(archive_entry_atime(entry)), tv_nsec: Int(archive_entry_atime_nsec(entry))) : modification
        return [access, modification]
    }

    /// A path naming what `descriptor` refers to (an `BOXSTACK_O_PATH` descriptor cannot be used with fchmod
    /// and friends); it resolves to the descriptor's own file, already inside the root.
    private static func procPath(_ descriptor: Int32) -> String { "/proc/self/fd/\(descriptor)" }

    // MARK: Directories

    private func components(_ path: String) -> [Substring] { path.split(separator: "/") }

    private func depth(_ path: String) -> Int { path.isEmpty ? 0 : path.utf8.count { $0 == UInt8(ascii: "/") } + 1 }

    /// The directory `path` of the tree (created with its missing parents), resolved inside the root.
    private func parentDirectory(_ path: String, raw: String, layer: LayerReader) throws -> Int32 {
        if let cachedParent, cachedParent.path == path { return cachedParent.descriptor }
        forgetParent()
        let descriptor: Int32
        do throws(ContainedDirectory.PathError) { descriptor = try root.openDirectory(components(path), creatingWithMode: 0o755) } catch {
            throw refuse(raw, layer, error)
        }
        cachedParent = (path, descriptor)
        return descriptor
    }

    private func forgetParent() {
        if let cachedParent { close(cachedParent.descriptor) }
        cachedParent = nil
    }

    private func remove(_ name: String, in parent: Int32, isDirectory: Bool, raw: String, layer: LayerReader) throws {
        // The kept parent may lie in what goes; the directory removed from is not removed.
        if isDirectory, cachedParent?.descriptor != parent { forgetParent() }
        do throws(DirectoryTree.Failure) { try DirectoryTree.remove(name, in: parent, isDirectory: isDirectory) } catch {
            throw failed(raw, layer, "remove \(Terminal.quoted(error.path)) for", code: error.code)
        }
    }
}
