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

/// Writes the tree a stack of layers means (`LayerStackPlan`) into an empty directory; nothing
/// outside the directory can change.
///
/// Only the winning entries are written, each once, in the plan's order: what a higher layer hides or
/// replaces never reaches the disk, so no whiteout or opaque marker removes anything. Containment is
/// the kernel's: every path is opened below the root's descriptor with `openat2(2)` and
/// `RESOLVE_IN_ROOT` (`ContainedDirectory`), and every change (create, write, link, owner, mode,
/// times, extended attributes) is made relative to a directory descriptor obtained that way, on a
/// final name that is never followed. So a symlink in the tree resolves inside it as it would in a
/// container, and no entry order, missing directory or path length leads outside. libarchive only
/// reads the tar; it writes nothing.
final class TreeUnpacker {
    private let root: ContainedDirectory
    private let isRoot = geteuid() == 0
    private var report = UnpackReport()
    /// Modes and times of directory entries, set once everything below them is in place.
    private var directoryMetadata: [(path: String, mode: mode_t, times: [timespec])] = []
    /// The parent directory of the last entry, kept open while entries share it.
    private var cachedParent: (path: String, descriptor: Int32)?

    init(root: String) throws {
        self.root = try ContainedDirectory(path: root)
        let children = try DirectoryTree.names(in: self.root.descriptor)
        guard children.isEmpty else {
            throw BoxstackError(
                .invalidArgument, "\(root) is not empty; unpack into a new or empty directory (nothing was written).")
        }
    }

    deinit { forgetParent() }

    /// Writes the winners of `plan`; every layer's digests are checked as it streams and at its end.
    func apply(_ plan: LayerStackPlan) throws -> UnpackReport {
        var readers = LayerReaders(layers: plan.layers)
        defer { forgetParent() }
        for slot in plan.merged {
            switch slot.item {
            case .header(let header):
                try applyEntry(header, path: slot.path, layer: nil, description: plan.layers[slot.layer].description)
            case .content(let layer, let ordinal, _):
                let (entry, reader) = try readers.entry(layer: layer, ordinal: ordinal)
                try applyEntry(entry, path: slot.path, layer: reader, description: reader.description)
            }
        }
        try readers.finish()
        forgetParent()
        // Deepest first, so setting a parent's times is the last change below it.
        for item in directoryMetadata.reversed() {
            guard let descriptor = try? root.open(components(item.path), flags: BOXSTACK_O_PATH | O_DIRECTORY | O_NOFOLLOW) else { continue }
            defer { close(descriptor) }
            chmod(Self.procPath(descriptor), item.mode)
            utimensat(AT_FDCWD, Self.procPath(descriptor), item.times, 0)
        }
        return report
    }

    private func refuse(_ name: String, _ description: String, _ reason: String) -> BoxstackError {
        BoxstackError(
            .invalidData,
            "refusing the entry \(Terminal.quoted(name)) of \(description): \(reason); the unpack into \(root.path) stopped there.")
    }

    private func failed(_ name: String, _ description: String, _ action: String, code: Int32 = errno) -> BoxstackError {
        BoxstackError(
            .permission,
            "cannot \(action) \(Terminal.quoted(name)) of \(description) in \(root.path): \(String(cString: strerror(code))).")
    }

    private func refuse(_ name: String, _ description: String, _ error: ContainedDirectory.PathError) -> BoxstackError {
        switch error.code {
        case ENOTDIR: refuse(name, description, "\(Terminal.quoted(error.path)) is not a directory")
        case ELOOP: refuse(name, description, "too many levels of symlinks below \(Terminal.quoted(error.path))")
        case ENAMETOOLONG: refuse(name, description, "a name in \(Terminal.quoted(error.path)) is too long")
        default: failed(name, description, "resolve \(Terminal.quoted(error.path)) for", code: error.code)
        }
    }

    /// Writes one winning entry at `path`; `layer` is the reader positioned at its content (nil for a
    /// header without content: a directory or a hard link).
    private func applyEntry(_ entry: OpaquePointer, path: String, layer: LayerReader?, description: String) throws {
        let (parentPath, name) = LayerPath.split(path)
        let parent = try parentDirectory(parentPath, raw: path, description: description)
        let type = archive_entry_filetype(entry)
        var existing = stat()
        let exists = fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0
        report.entries += 1
        if let hardlink = archive_entry_hardlink(entry) {
            try link(name, in: parent, to: String(cString: hardlink), raw: path, description: description)
            return
        }
        if exists, !(existing.st_mode & S_IFMT == S_IFDIR && type == ArchiveFileType.directory) {
            // Only an implied parent (a directory made for an entry below it) can be in the way.
            throw refuse(path, description, "it is in the tree twice")
        }
        switch type {
        case ArchiveFileType.directory:
            if !exists, mkdirat(parent, name, 0o700) != 0 { throw failed(path, description, "create the directory") }
            let descriptor = openat(parent, name, BOXSTACK_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { throw failed(path, description, "open the directory") }
            defer { close(descriptor) }
            try setDirectoryMetadata(entry, descriptor: descriptor, path: path, description: description)
        case ArchiveFileType.regular:
            guard let layer else { throw refuse(path, description, "it has no content") }
            try writeFile(entry, name: name, in: parent, raw: path, layer: layer)
        case ArchiveFileType.symlink:
            guard let target = archive_entry_symlink(entry) else { throw refuse(path, description, "the symlink has no target") }
            guard symlinkat(target, parent, name) == 0 else { throw failed(path, description, "create the symlink") }
            try setNodeMetadata(entry, name: name, in: parent, raw: path, description: description, isSymlink: true)
        case ArchiveFileType.characterDevice, ArchiveFileType.blockDevice, ArchiveFileType.fifo:
            guard mknodat(parent, name, type | 0o600, archive_entry_rdev(entry)) == 0 else {
                if !isRoot, errno == EPERM, type != ArchiveFileType.fifo {
                    report.devicesNotCreated += 1
                    return
                }
                throw failed(path, description, "create the node")
            }
            try setNodeMetadata(entry, name: name, in: parent, raw: path, description: description, isSymlink: false)
        default:
            report.warnings.append("\(Terminal.quoted(path)): sockets and unknown file types are not unpacked")
        }
    }

    // MARK: Files

    private func writeFile(_ entry: OpaquePointer, name: String, in parent: Int32, raw: String, layer: LayerReader) throws {
        let description = layer.description
        let file = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw failed(raw, description, "create") }
        var closed = false
        defer { if !closed { close(file) } }
        try layer.readData { block, offset in
            var written = 0
            while written < block.count {
                let count = pwrite(file, block.baseAddress! + written, block.count - written, off_t(offset) + off_t(written))
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { throw failed(raw, description, "write", code: count == 0 ? ENOSPC : errno) }
                written += count
            }
        }
        // Sparse files end in a hole that no data block reaches.
        let size = archive_entry_size(entry)
        if size > 0, ftruncate(file, off_t(size)) != 0 { throw failed(raw, description, "write") }
        try setOwner(entry, raw: raw, description: description) { fchown(file, $0, $1) }
        guard fchmod(file, mode_t(archive_entry_perm(entry))) == 0 else { throw failed(raw, description, "set the mode of") }
        setExtendedAttributes(entry, raw: raw) { fsetxattr(file, $0, $1, $2, 0) }
        var times = Self.times(entry)
        guard futimens(file, &times) == 0 else { throw failed(raw, description, "set the times of") }
        closed = true
        // Deferred write errors (a full disk on some file systems) surface at close.
        guard close(file) == 0 else { throw failed(raw, description, "write") }
    }

    /// A hard link to an entry written before it (the plan puts link targets first).
    private func link(_ name: String, in parent: Int32, to target: String, raw: String, description: String) throws {
        let (targetParentPath, targetName) = LayerPath.split(target)
        let targetParent: Int32
        do throws(ContainedDirectory.PathError) {
            targetParent = try root.openDirectory(components(targetParentPath), creatingWithMode: nil)
        } catch {
            throw refuse(raw, description, "its hard link target \(Terminal.quoted(target)) does not exist")
        }
        defer { close(targetParent) }
        var info = stat()
        guard fstatat(targetParent, targetName, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT != S_IFDIR else {
            throw refuse(raw, description, "its hard link target \(Terminal.quoted(target)) is not a file of the tree")
        }
        guard linkat(targetParent, targetName, parent, name, 0) == 0 else { throw failed(raw, description, "create the hard link") }
    }

    // MARK: Metadata

    private func setDirectoryMetadata(_ entry: OpaquePointer, descriptor: Int32, path: String, description: String) throws {
        let proc = Self.procPath(descriptor)
        try setOwner(entry, raw: path, description: description) { chown(proc, $0, $1) }
        setExtendedAttributes(entry, raw: path) { setxattr(proc, $0, $1, $2, 0) }
        directoryMetadata.append((path, mode_t(archive_entry_perm(entry)), Self.times(entry)))
    }

    private func setNodeMetadata(
        _ entry: OpaquePointer, name: String, in parent: Int32, raw: String, description: String, isSymlink: Bool
    ) throws {
        try setOwner(entry, raw: raw, description: description) { fchownat(parent, name, $0, $1, AT_SYMLINK_NOFOLLOW) }
        if !isSymlink, fchmodat(parent, name, mode_t(archive_entry_perm(entry)), 0) != 0 {
            throw failed(raw, description, "set the mode of")
        }
        // lsetxattr on the name below the (already contained) directory: the name itself is not followed.
        let path = Self.procPath(parent) + "/" + name
        setExtendedAttributes(entry, raw: raw) { lsetxattr(path, $0, $1, $2, 0) }
        utimensat(parent, name, Self.times(entry), AT_SYMLINK_NOFOLLOW)
    }

    /// Sets the entry's numeric owner as root; as another user, counts owners that differ from the user's.
    private func setOwner(_ entry: OpaquePointer, raw: String, description: String, _ change: (uid_t, gid_t) -> Int32) throws {
        let uid = uid_t(truncatingIfNeeded: archive_entry_uid(entry))
        let gid = gid_t(truncatingIfNeeded: archive_entry_gid(entry))
        guard isRoot else {
            if uid != getuid() || gid != getgid() { report.ownersNotRestored += 1 }
            return
        }
        guard change(uid, gid) == 0 else {
            // Root of a user namespace that does not map this owner (EINVAL), or without CAP_CHOWN (EPERM).
            guard errno == EINVAL || errno == EPERM else { throw failed(raw, description, "set the owner of") }
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

    /// The directory `path` of the tree (created with its missing parents), resolved inside the root.
    private func parentDirectory(_ path: String, raw: String, description: String) throws -> Int32 {
        if let cachedParent, cachedParent.path == path { return cachedParent.descriptor }
        forgetParent()
        let descriptor: Int32
        do throws(ContainedDirectory.PathError) { descriptor = try root.openDirectory(components(path), creatingWithMode: 0o755) } catch {
            throw refuse(raw, description, error)
        }
        cachedParent = (path, descriptor)
        return descriptor
    }

    private func forgetParent() {
        if let cachedParent { close(cachedParent.descriptor) }
        cachedParent = nil
    }
}
