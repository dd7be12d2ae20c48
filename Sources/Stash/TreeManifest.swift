import BoxstackCore
import Foundation

/// The metadata of one entry of a root tree, as compared between stashes.
public struct TreeEntry: Hashable, Sendable {
    /// File types, named by GNU find's `%y` letters.
    public enum Kind: UInt8, Sendable {
        case file = 0x66  // f
        case directory = 0x64  // d
        case symlink = 0x6C  // l
        case characterDevice = 0x63  // c
        case blockDevice = 0x62  // b
        case fifo = 0x70  // p
        case socket = 0x73  // s
    }

    /// Path relative to the tree's root, without a leading `./` or `/`.
    public var path: String
    public var kind: Kind
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// Size in bytes (ignored for directories when comparing).
    public var size: Int64
    /// Modification time in nanoseconds since the epoch.
    public var mtimeNanoseconds: Int64
    /// The symlink's target; empty for other kinds.
    public var linkTarget: String
    /// Device number for device nodes; 0 when none or unknown.
    public var rdev: UInt64
    /// A digest of the extended attributes (and with them the ACLs); empty when there are none.
    public var xattrDigest: String
    /// For files with more than one hard link: the first path (in tree order) of the same inode.
    public var hardlinkGroup: String

    public init(
        path: String, kind: Kind, mode: UInt32, uid: UInt32, gid: UInt32, size: Int64, mtimeNanoseconds: Int64,
        linkTarget: String = "", rdev: UInt64 = 0, xattrDigest: String = "", hardlinkGroup: String = ""
    ) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.linkTarget = linkTarget
        self.rdev = rdev
        self.xattrDigest = xattrDigest
        self.hardlinkGroup = hardlinkGroup
    }
}

/// The metadata of a whole root tree: what a stash compares to find the changes since its last layer.
///
/// It comes from a local scan (`TreeScanner`) or from the guest agent's `tree-manifest` output, and is
/// stored with each stash as a blob named by the manifest annotation `io.boxstack.tree-manifest`.
/// A manifest from the agent carries no xattr, device-number or hard-link information; comparisons
/// use those fields only when both sides have them.
public struct TreeManifest: Sendable, Equatable {
    /// The entries in layer order (see `TreeManifest.precedes`).
    public private(set) var entries: [TreeEntry]
    /// True when `xattrDigest` and `rdev` were recorded.
    public var recordsExtendedAttributes: Bool
    /// True when `hardlinkGroup` was recorded.
    public var recordsHardlinks: Bool

    /// The media type of the stored blob.
    public static let mediaType = "application/vnd.boxstack.tree-manifest.v1"
    /// The manifest annotation that names the stored blob.
    public static let annotation = "io.boxstack.tree-manifest"

    /// A manifest of `entries`, sorted into layer order.
    public init(entries: [TreeEntry], recordsExtendedAttributes: Bool, recordsHardlinks: Bool) {
        self.entries = TreeManifest.sortedForLayer(entries)
        self.recordsExtendedAttributes = recordsExtendedAttributes
        self.recordsHardlinks = recordsHardlinks
    }

    /// Parses the agent's `tree-manifest ROOT` output: NUL-separated records of GNU find's
    /// `%y\t%m\t%U\t%G\t%s\t%T@\t%P\0%l\0`. The root itself (empty `%P`) is skipped.
    public init(agentOutput: Data) throws {
        var entries: [TreeEntry] = []
        let fields = agentOutput.split(separator: 0, omittingEmptySubsequences: false)
        var index = 0
        while index + 1 < fields.count {
            let record = fields[index]
            let target = fields[index + 1]
            index += 2
            let parts = record.split(separator: 0x09, maxSplits: 6, omittingEmptySubsequences: false)
            guard parts.count == 7, let kindByte = parts[0].first, let kind = TreeEntry.Kind(rawValue: kindByte),
                let mode = UInt32(String(decoding: parts[1], as: UTF8.self), radix: 8),
                let uid = UInt32(String(decoding: parts[2], as: UTF8.self)),
                let gid = UInt32(String(decoding: parts[3], as: UTF8.self)),
                let size = Int64(String(decoding: parts[4], as: UTF8.self)),
                let mtime = TreeManifest.nanoseconds(String(decoding: parts[5], as: UTF8.self))
            else {
                let shown = String(decoding: record.prefix(200), as: UTF8.self)
                throw BoxstackError(.invalidData, "the guest's tree manifest has a malformed record: \(shown.debugDescription).")
            }
            let path = String(decoding: parts[6], as: UTF8.self)
            if path.isEmpty || path == "." { continue }
            entries.append(
                TreeEntry(
                    path: path, kind: kind, mode: mode & 0o7777, uid: uid, gid: gid, size: size, mtimeNanoseconds: mtime,
                    linkTarget: kind == .symlink ? String(decoding: target, as: UTF8.self) : ""))
        }
        self.init(entries: entries, recordsExtendedAttributes: false, recordsHardlinks: false)
    }

    /// Converts GNU find's `%T@` (`1700000000.1234567890`) to nanoseconds.
    static func nanoseconds(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let seconds = Int64(parts[0]) else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let digits = String(parts[1].prefix(9)).padding(toLength: 9, withPad: "0", startingAt: 0)
            guard let value = Int64(digits) else { return nil }
            fraction = value
        }
        return seconds * 1_000_000_000 + fraction
    }

    // MARK: Stored form

    private static let header = "boxstack-tree-manifest 1"

    /// The stored form: a header line, then per entry the numeric fields separated by tabs and the
    /// path, link target and hard-link group, each ended by NUL.
    public func serialized() -> Data {
        var text = "\(TreeManifest.header) xattrs=\(recordsExtendedAttributes ? 1 : 0) hardlinks=\(recordsHardlinks ? 1 : 0)\n"
        text.reserveCapacity(entries.count * 120)
        for entry in entries {
            text += "\(Character(UnicodeScalar(entry.kind.rawValue)))\t\(String(entry.mode, radix: 8))\t\(entry.uid)\t\(entry.gid)\t"
            text += "\(entry.size)\t\(entry.mtimeNanoseconds)\t\(entry.rdev)\t\(entry.xattrDigest)\0"
            text += "\(entry.path)\0\(entry.linkTarget)\0\(entry.hardlinkGroup)\0"
        }
        return Data(text.utf8)
    }

    /// Parses the stored form written by `serialized()`.
    public init(serialized data: Data) throws {
        guard let newline = data.firstIndex(of: 0x0A) else {
            throw BoxstackError(.invalidData, "the stored tree manifest has no header.")
        }
        let header = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
        guard header.hasPrefix(TreeManifest.header) else {
            throw BoxstackError(.invalidData, "the stored tree manifest has an unknown format (\(header.prefix(60))).")
        }
        // Scanned by hand over the raw bytes: this runs on every stash, for every entry of the tree.
        let body = data[(newline + 1)...]
        let parsed: [TreeEntry]? = body.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [TreeEntry]? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var entries: [TreeEntry] = []
            var position = 0
            func field(until terminator: UInt8) -> UnsafeBufferPointer<UInt8>? {
                guard let end = bytes[position...].firstIndex(of: terminator) else { return nil }
                defer { position = end + 1 }
                return UnsafeBufferPointer(rebasing: bytes[position..<end])
            }
            func number(_ buffer: UnsafeBufferPointer<UInt8>?, radix: UInt64 = 10) -> UInt64? {
                guard let buffer, !buffer.isEmpty else { return nil }
                var value: UInt64 = 0
                for byte in buffer {
                    let digit = UInt64(byte) &- 0x30
                    guard digit < radix else { return nil }
                    value = value &* radix &+ digit
                }
                return value
            }
            func signed(_ buffer: UnsafeBufferPointer<UInt8>?) -> Int64? {
                guard let buffer, let first = buffer.first else { return nil }
                if first == UInt8(ascii: "-") {
                    return number(UnsafeBufferPointer(rebasing: buffer.dropFirst())).map { -Int64(bitPattern: $0) }
                }
                return number(buffer).map { Int64(bitPattern: $0) }
            }
            while position < bytes.count {
                guard let kindField = field(until: 0x09), let kindByte = kindField.first, let kind = TreeEntry.Kind(rawValue: kindByte),
                    let mode = number(field(until: 0x09), radix: 8), let uid = number(field(until: 0x09)),
                    let gid = number(field(until: 0x09)), let size = signed(field(until: 0x09)),
                    let mtime = signed(field(until: 0x09)), let rdev = number(field(until: 0x09)),
                    let xattr = field(until: 0), let path = field(until: 0), let target = field(until: 0),
                    let group = field(until: 0)
                else { return nil }
                entries.append(
                    TreeEntry(
                        path: String(decoding: path, as: UTF8.self), kind: kind, mode: UInt32(truncatingIfNeeded: mode),
                        uid: UInt32(truncatingIfNeeded: uid), gid: UInt32(truncatingIfNeeded: gid), size: size,
                        mtimeNanoseconds: mtime, linkTarget: String(decoding: target, as: UTF8.self), rdev: rdev,
                        xattrDigest: String(decoding: xattr, as: UTF8.self), hardlinkGroup: String(decoding: group, as: UTF8.self)))
            }
            return entries
        }
        guard let entries = parsed else {
            throw BoxstackError(.invalidData, "the stored tree manifest is damaged; stash into a new name to start over.")
        }
        self.entries = entries
        recordsExtendedAttributes = header.contains("xattrs=1")
        recordsHardlinks = header.contains("hardlinks=1")
    }

    // MARK: Comparison

    /// What changed from `previous` to `current`.
    ///
    /// `changedPaths`: every new or modified entry of `current`, in layer order (a changed directory
    /// stands for itself only, not its subtree; all members of a changed hard-link group are included).
    /// `deletedPaths`: the top-most paths of `previous` that are gone, in layer order, leaving out paths
    /// below a deleted directory or below a directory that became a non-directory.
    /// Without `previous`, every entry is changed.
    public static func changes(from previous: TreeManifest?, to current: TreeManifest) -> (changedPaths: [String], deletedPaths: [String]) {
        guard let previous else { return (current.entries.map(\.path), []) }
        let compareExtended = previous.recordsExtendedAttributes && current.recordsExtendedAttributes
        let compareLinks = previous.recordsHardlinks && current.recordsHardlinks
        var old: [String: TreeEntry] = [:]
        old.reserveCapacity(previous.entries.count)
        for entry in previous.entries { old[entry.path] = entry }
        var new: [String: TreeEntry] = [:]
        new.reserveCapacity(current.entries.count)
        for entry in current.entries { new[entry.path] = entry }

        var changed: Set<String> = []
        var changedGroups: Set<String> = []
        for entry in current.entries {
            guard let before = old[entry.path], !differs(before, entry, compareExtended: compareExtended, compareLinks: compareLinks)
            else {
                changed.insert(entry.path)
                if !entry.hardlinkGroup.isEmpty { changedGroups.insert(entry.hardlinkGroup) }
                continue
            }
        }
        if !changedGroups.isEmpty {
            for entry in current.entries where changedGroups.contains(entry.hardlinkGroup) { changed.insert(entry.path) }
        }
        var deleted: [String] = []
        for entry in previous.entries where new[entry.path] == nil {
            if !hasRemovedAncestor(entry.path, old: old, new: new) { deleted.append(entry.path) }
        }
        let changedInOrder = current.entries.lazy.map(\.path).filter { changed.contains($0) }
        return (Array(changedInOrder), deleted)
    }

    /// True when an ancestor of `path` is gone or went from a directory to something else.
    private static func hasRemovedAncestor(_ path: String, old: [String: TreeEntry], new: [String: TreeEntry]) -> Bool {
        var parent = Substring(path)
        while let slash = parent.lastIndex(of: "/") {
            parent = parent[..<slash]
            let key = String(parent)
            guard let now = new[key] else { return true }
            if now.kind != .directory, old[key]?.kind == .directory { return true }
        }
        return false
    }

    static func differs(_ a: TreeEntry, _ b: TreeEntry, compareExtended: Bool, compareLinks: Bool) -> Bool {
        if a.kind != b.kind || a.mode != b.mode || a.uid != b.uid || a.gid != b.gid { return true }
        if a.mtimeNanoseconds != b.mtimeNanoseconds || a.linkTarget != b.linkTarget { return true }
        if a.kind != .directory, a.size != b.size { return true }
        if compareExtended, a.xattrDigest != b.xattrDigest || a.rdev != b.rdev { return true }
        if compareLinks, a.hardlinkGroup != b.hardlinkGroup { return true }
        return false
    }

    // MARK: Layer order

    /// The order entries take in a layer: depth first, a directory before its contents, names compared
    /// bytewise within a directory, and whiteouts (`.wh.`) before their siblings, as the OCI image spec
    /// recommends.
    public static func precedes(_ a: String, _ b: String) -> Bool {
        var left = a
        var right = b
        return left.withUTF8 { x in right.withUTF8 { y in precedes(x, y) } }
    }

    private static func precedes(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        var index = 0
        let common = min(x.count, y.count)
        while index < common, x[index] == y[index] { index += 1 }
        if index == x.count, index == y.count { return false }
        // Only one side ended or reached a slash: the components are equal and that side is an ancestor.
        let xEnds = index == x.count || x[index] == slash
        let yEnds = index == y.count || y[index] == slash
        if xEnds, yEnds { return index == x.count }
        var start = index
        while start > 0, x[start - 1] != slash { start -= 1 }
        var xEnd = index
        while xEnd < x.count, x[xEnd] != slash { xEnd += 1 }
        var yEnd = index
        while yEnd < y.count, y[yEnd] != slash { yEnd += 1 }
        let xName = UnsafeBufferPointer(rebasing: x[start..<xEnd])
        let yName = UnsafeBufferPointer(rebasing: y[start..<yEnd])
        let whiteout = Array(".wh.".utf8)
        let xWhiteout = xName.starts(with: whiteout)
        let yWhiteout = yName.starts(with: whiteout)
        if xWhiteout != yWhiteout { return xWhiteout }
        return xName.lexicographicallyPrecedes(yName)
    }

    static func sortedForLayer(_ entries: [TreeEntry]) -> [TreeEntry] {
        var sorted = true
        for index in entries.indices.dropFirst() where !precedes(entries[index - 1].path, entries[index].path) {
            sorted = false
            break
        }
        return sorted ? entries : entries.sorted { precedes($0.path, $1.path) }
    }

    static func sortedForLayer(_ paths: [String]) -> [String] { paths.sorted(by: precedes) }
}
