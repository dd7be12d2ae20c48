import BoxstackCore
import CLibArchive
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
    /// Other warnings from libarchive (e.g. extended attributes the user may not set), with their entry.
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

/// Applies layers to a directory with OCI whiteout semantics, refusing any entry that could touch
/// something outside the directory.
///
/// Every entry's parent path is resolved component by component with `lstat`: symlinks inside the
/// tree are followed (relative ones, staying inside), and a symlink that is absolute or climbs out
/// stops the unpack with an error naming the entry. libarchive then writes to the resolved path,
/// whose parents are all real directories inside the root.
final class TreeUnpacker {
    private let root: String
    private let isRoot = geteuid() == 0
    private var report = UnpackReport()
    /// Relative paths known to be real directories (cleared whenever something is removed or replaced).
    private var knownDirectories: Set<String> = []
    /// Directories made writable for a non-root user, with their original modes, restored at the end.
    private var madeWritable: [String: mode_t] = [:]
    /// Paths written by the layer being applied, and their ancestors (whiteouts only hide lower layers).
    private var touched: Set<String> = []
    private var touchedAncestors: Set<String> = []
    /// Times of directories this layer changes the contents of without having an entry for them,
    /// restored at the end of the layer so unchanged directories keep their mtime.
    private var parentTimes: [String: (access: timespec, modification: timespec)] = [:]
    /// Times of this layer's directory entries, set once the layer's contents are all in place.
    private var directoryTimes: [(path: String, access: timespec, modification: timespec)] = []

    init(root: String) throws {
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(root, &resolved) != nil else {
            let reason = String(cString: strerror(errno))
            throw BoxstackError(.notFound, "cannot use \(root) as the target: \(reason).")
        }
        self.root = String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Layers

    /// Applies one layer blob (any compression libarchive reads).
    func apply(layerPath: String, description: String) throws {
        guard let reader = archive_read_new(), let disk = archive_write_disk_new() else {
            throw BoxstackError(.internalError, "libarchive could not allocate a reader.")
        }
        defer {
            archive_read_free(reader)
            archive_write_free(disk)
        }
        archive_read_support_format_tar(reader)
        archive_read_support_format_empty(reader)
        archive_read_support_filter_all(reader)
        var flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL
        flags |= ARCHIVE_EXTRACT_UNLINK | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        if isRoot { flags |= ARCHIVE_EXTRACT_OWNER }
        archive_write_disk_set_options(disk, flags)
        guard archive_read_open_filename(reader, layerPath, 1 << 20) == ARCHIVE_OK else {
            throw BoxstackError(.invalidData, "cannot read \(description): \(Self.message(reader)).")
        }
        touched = []
        touchedAncestors = []
        parentTimes = [:]
        directoryTimes = []
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { break }
            guard status >= ARCHIVE_WARN, let entry else {
                throw BoxstackError(.invalidData, "\(description) is damaged: \(Self.message(reader)).")
            }
            try applyEntry(entry, reader: reader, disk: disk, description: description)
        }
        restoreParentTimes()
        // Closing applies the deferred directory modes and times of this layer's own directories.
        if archive_write_close(disk) < ARCHIVE_WARN {
            throw BoxstackError(.permission, "cannot finish \(description) in \(root): \(Self.message(disk)).")
        }
        // Whiteouts and new entries below a directory of this layer change its mtime after libarchive set it.
        for item in directoryTimes.reversed() {
            var values = [item.access, item.modification]
            utimensat(AT_FDCWD, item.path, &values, AT_SYMLINK_NOFOLLOW)
        }
    }

    private static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    private func refuse(_ name: String, _ description: String, _ reason: String) -> BoxstackError {
        BoxstackError(
            .invalidData,
            "refusing the entry \(name.debugDescription) of \(description): \(reason); the unpack into \(root) stopped there.")
    }

    private func applyEntry(_ entry: OpaquePointer, reader: OpaquePointer, disk: OpaquePointer, description: String) throws {
        let rawName = String(cString: archive_entry_pathname(entry))
        let path: String
        do throws(LayerPath.UnsafeName) { path = try LayerPath.checked(rawName) } catch { throw refuse(rawName, description, error.reason) }
        if path.isEmpty { return }
        let (parent, name) = split(path)
        let realParent = try resolveDirectory(parent, entry: rawName, description: description)

        if name == ".wh..wh..opq" {
            try removeLower(inDirectory: realParent, layerDirectory: parent, entry: rawName, description: description)
            return
        }
        if name.hasPrefix(".wh.") {
            let hidden = String(name.dropFirst(4))
            let layerPath = join(parent, hidden)
            try removeLower(join(realParent, hidden), layerPath: layerPath, entry: rawName, description: description)
            return
        }

        let target = join(realParent, name)
        let absolute = root + "/" + target
        let type = archive_entry_filetype(entry)
        var existing = stat()
        if lstat(absolute, &existing) == 0 {
            let existingIsDirectory = existing.st_mode & S_IFMT == S_IFDIR
            if existingIsDirectory, type != ArchiveFileType.directory {
                // A later layer or image puts a non-directory where a directory was (rsync semantics).
                try removeTree(absolute, entry: rawName, description: description)
                knownDirectories = []
            } else if existing.st_mode & S_IFMT == S_IFLNK, type != ArchiveFileType.symlink {
                // Never let libarchive treat an existing symlink as the directory or file to update.
                unlink(absolute)
                knownDirectories = []
            }
        }
        if let link = archive_entry_hardlink(entry) {
            let rawTarget = String(cString: link)
            guard !rawTarget.hasPrefix("/"), let linkPath = LayerPath.normalized(rawTarget), !linkPath.isEmpty else {
                throw refuse(rawName, description, "its hard link target \(rawTarget.debugDescription) is outside the tree")
            }
            let (linkParent, linkName) = split(linkPath)
            let realLinkParent = try resolveDirectory(linkParent, entry: rawName, description: description)
            archive_entry_copy_hardlink(entry, root + "/" + join(realLinkParent, linkName))
        }
        archive_entry_copy_pathname(entry, absolute)
        rememberTimes(ofDirectory: realParent)
        try makeParentWritable(realParent)

        let headerStatus = archive_write_header(disk, entry)
        if headerStatus < ARCHIVE_WARN {
            let isDevice = type == ArchiveFileType.characterDevice || type == ArchiveFileType.blockDevice
            if !isRoot, isDevice {
                report.devicesNotCreated += 1
                return
            }
            throw BoxstackError(.permission, "cannot write \(rawName) of \(description) into \(root): \(Self.message(disk)).")
        }
        if headerStatus == ARCHIVE_WARN { noteWarning(rawName, disk) }
        if archive_entry_size(entry) > 0 {
            try copyData(reader: reader, disk: disk, name: rawName, description: description)
        }
        let finishStatus = archive_write_finish_entry(disk)
        if finishStatus < ARCHIVE_WARN {
            throw BoxstackError(.permission, "cannot write \(rawName) of \(description) into \(root): \(Self.message(disk)).")
        }
        if finishStatus == ARCHIVE_WARN { noteWarning(rawName, disk) }
        if !isRoot, archive_entry_uid(entry) != Int64(getuid()) || archive_entry_gid(entry) != Int64(getgid()) {
            report.ownersNotRestored += 1
        }
        report.entries += 1
        if type == ArchiveFileType.directory {
            knownDirectories.insert(target)
            let modification = timespec(tv_sec: Int(archive_entry_mtime(entry)), tv_nsec: Int(archive_entry_mtime_nsec(entry)))
            let access = archive_entry_atime_is_set(entry) != 0
                ? timespec(tv_sec: Int(archive_entry_atime(entry)), tv_nsec: Int(archive_entry_atime_nsec(entry))) : modification
            directoryTimes.append((absolute, access, modification))
        } else {
            knownDirectories.remove(target)
        }
        markTouched(path)
    }

    private func noteWarning(_ name: String, _ disk: OpaquePointer) {
        let text = Self.message(disk)
        // Owners are counted separately; libarchive only warns about them when asked to restore them.
        if text.contains("Can't set user") || text.contains("Can't set group") { return }
        report.warnings.append("\(name): \(text)")
    }

    private func copyData(reader: OpaquePointer, disk: OpaquePointer, name: String, description: String) throws {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let status = archive_read_data_block(reader, &block, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status >= ARCHIVE_WARN else {
                throw BoxstackError(.invalidData, "cannot read \(name) from \(description): \(Self.message(reader)).")
            }
            if archive_write_data_block(disk, block, size, offset) < ARCHIVE_WARN {
                throw BoxstackError(.permission, "cannot write \(name) of \(description) into \(root): \(Self.message(disk)).")
            }
        }
    }

    // MARK: Paths

    private func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    private func join(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }

    /// Resolves the directory `relative` inside the root to a path whose every component is a real
    /// directory (or does not exist yet), following symlinks that stay inside the root.
    private func resolveDirectory(_ relative: String, entry: String, description: String) throws -> String {
        if relative.isEmpty || knownDirectories.contains(relative) { return relative }
        var resolved: [String] = []
        var pending = Array(relative.split(separator: "/").map(String.init).reversed())
        var hops = 0
        var missing = false
        while let component = pending.popLast() {
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                guard !resolved.isEmpty else {
                    throw refuse(entry, description, "it would be written through a symlink that leads outside the tree")
                }
                resolved.removeLast()
                continue
            }
            resolved.append(component)
            if missing { continue }
            let current = resolved.joined(separator: "/")
            if knownDirectories.contains(current) { continue }
            var info = stat()
            guard lstat(root + "/" + current, &info) == 0 else {
                missing = true
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                knownDirectories.insert(current)
            case S_IFLNK:
                hops += 1
                guard hops <= 40 else { throw refuse(entry, description, "too many levels of symlinks below \(current)") }
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = readlink(root + "/" + current, &buffer, buffer.count - 1)
                guard length > 0 else { throw refuse(entry, description, "cannot read the symlink \(current)") }
                let target = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix("/") {
                    throw refuse(entry, description, "it would be written through the symlink \(current) -> \(target), which leads outside the tree")
                }
                resolved.removeLast()
                pending += target.split(separator: "/").map(String.init).reversed()
            default:
                throw refuse(entry, description, "\(current) is not a directory")
            }
        }
        return resolved.joined(separator: "/")
    }

    /// As non-root, gives the user write access to `relative`'s directory for the rest of the unpack.
    private func makeParentWritable(_ relative: String) throws {
        guard !isRoot else { return }
        let absolute = relative.isEmpty ? root : root + "/" + relative
        guard access(absolute, W_OK | X_OK) != 0, errno == EACCES else { return }
        var info = stat()
        guard lstat(absolute, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return }
        if madeWritable[relative] == nil { madeWritable[relative] = info.st_mode & 0o7777 }
        chmod(absolute, (info.st_mode & 0o7777) | 0o700)
    }

    /// Records the times of the directory `relative` before its contents change, unless it was written
    /// by this layer (then libarchive sets its times when the layer is closed).
    private func rememberTimes(ofDirectory relative: String) {
        guard parentTimes[relative] == nil, !touched.contains(relative) else { return }
        var info = stat()
        guard lstat(relative.isEmpty ? root : root + "/" + relative, &info) == 0 else { return }
        parentTimes[relative] = (info.st_atim, info.st_mtim)
    }

    private func restoreParentTimes() {
        for (relative, times) in parentTimes where !touched.contains(relative) {
            let absolute = relative.isEmpty ? root : root + "/" + relative
            var info = stat()
            guard lstat(absolute, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            var values = [times.access, times.modification]
            utimensat(AT_FDCWD, absolute, &values, AT_SYMLINK_NOFOLLOW)
        }
    }

    private func markTouched(_ path: String) {
        touched.insert(path)
        var parent = Substring(path)
        while let slash = parent.lastIndex(of: "/") {
            parent = parent[..<slash]
            guard touchedAncestors.insert(String(parent)).inserted else { break }
        }
    }

    // MARK: Whiteouts

    /// Removes what lower layers put at `relative` (whose layer name is `layerPath`), keeping anything
    /// the current layer wrote there.
    private func removeLower(_ relative: String, layerPath: String, entry: String, description: String) throws {
        if touched.contains(layerPath) { return }
        let absolute = root + "/" + relative
        var info = stat()
        guard lstat(absolute, &info) == 0 else { return }
        if touchedAncestors.contains(layerPath), info.st_mode & S_IFMT == S_IFDIR {
            try removeLower(inDirectory: relative, layerDirectory: layerPath, entry: entry, description: description)
            return
        }
        rememberTimes(ofDirectory: split(relative).parent)
        try makeParentWritable(split(relative).parent)
        try removeTree(absolute, entry: entry, description: description)
        knownDirectories = []
    }

    /// The opaque marker: removes every lower entry of the directory `relative`.
    private func removeLower(inDirectory relative: String, layerDirectory: String, entry: String, description: String) throws {
        let absolute = relative.isEmpty ? root : root + "/" + relative
        guard let children = try? FileManager.default.contentsOfDirectory(atPath: absolute) else { return }
        for child in children {
            try removeLower(join(relative, child), layerPath: join(layerDirectory, child), entry: entry, description: description)
        }
    }

    /// Deletes `absolute` and everything below it without following symlinks, making directories
    /// writable where needed.
    private func removeTree(_ absolute: String, entry: String, description: String) throws {
        var info = stat()
        guard lstat(absolute, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            if access(absolute, W_OK | X_OK | R_OK) != 0 { chmod(absolute, 0o700) }
            for child in (try? FileManager.default.contentsOfDirectory(atPath: absolute)) ?? [] {
                try removeTree(absolute + "/" + child, entry: entry, description: description)
            }
            guard rmdir(absolute) == 0 else {
                throw BoxstackError(.permission, "cannot remove \(absolute) for \(entry) of \(description): \(String(cString: strerror(errno))).")
            }
        } else if unlink(absolute) != 0 {
            throw BoxstackError(.permission, "cannot remove \(absolute) for \(entry) of \(description): \(String(cString: strerror(errno))).")
        }
    }

    /// Restores directory modes changed for a non-root user; returns the report.
    func finish() throws -> UnpackReport {
        for (relative, mode) in madeWritable.sorted(by: { $0.key.count > $1.key.count }) {
            let absolute = relative.isEmpty ? root : root + "/" + relative
            var info = stat()
            if lstat(absolute, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { chmod(absolute, mode) }
        }
        return report
    }
}

extension LayerPath {
    /// Why a layer entry's name is refused.
    struct UnsafeName: Error {
        let reason: String
    }

    /// The normalized name of a layer entry; refuses absolute names and names with `..`, which could
    /// reach outside the tree the layer is unpacked or exported to.
    static func checked(_ rawName: String) throws(UnsafeName) -> String {
        if rawName.hasPrefix("/") { throw UnsafeName(reason: "absolute names are not allowed") }
        guard let path = normalized(rawName) else { throw UnsafeName(reason: "names with '..' are not allowed") }
        return path
    }
}
