import BoxstackCore
import CLibArchive
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What `StashStore.exportStack` wrote.
public struct StackExportReport: Sendable, Equatable {
    /// Layers read, over all images.
    public var layers = 0
    /// Entries in the tar.
    public var entries = 0
    /// Entries of lower layers left out because a higher layer replaced or hid them (whiteouts not counted).
    public var hiddenEntries = 0
    /// Hard-link groups whose shared file a higher layer replaced or hid; their links keep its content
    /// from their own layer (see `exportStack`).
    public var hardlinksCopied = 0
}

extension StashStore {
    /// Writes ONE uncompressed pax tar at `path` holding the tree `unpack(references, into:)` would
    /// build, without extracting anything: numeric owners, modes, xattrs, ACLs, device nodes and hard
    /// links pass through unchanged, so a non-root user can build a tree that root extracts elsewhere
    /// (`tar -x --numeric-owner --xattrs --acls`).
    ///
    /// Layers are stacked with the same semantics as `unpack`: `.wh.X` hides X and its subtree below its
    /// layer, `.wh..wh..opq` hides the lower contents of its directory, a non-directory hides a lower
    /// directory's subtree, and later images win over earlier ones. The tar lists the tree depth first,
    /// each directory right before its contents (GNU tar sets a directory's times when it leaves it),
    /// as long as the layers list their entries in that order (ours, umoci's and `tar --sort=name`'s
    /// do; entries of other layers keep their layer's order). Link targets always precede their links.
    ///
    /// A hard link whose target a higher layer replaced or deleted keeps the content it had in its own
    /// layer (as it does when the layers are extracted one after another): those links are
    /// written as one regular file with that content (hard-linked among themselves).
    /// A hard link whose target is not an earlier entry of its own layer is refused, like entries with
    /// absolute names or `..`; the error names the entry and no tar is left behind.
    ///
    /// Each stash name is read under its shared lock. The tar is written next to `path` and renamed into
    /// place when complete.
    @discardableResult
    public func exportStack(_ references: [StashReference], toTar path: String) throws -> StackExportReport {
        let names = Array(Set(references.map(\.name))).sorted()
        let locks = try names.map { try lock(name: $0, shared: true) }
        defer { _ = locks }
        let exporter = StackExporter(layers: try stackedLayers(references), outputPath: path)
        return try exporter.export()
    }
}

/// Flattens stacked layers into one tar.
///
/// Pass 1 reads only headers, top layer first, and decides which entry of which layer ends up in the
/// tree: an entry is visible unless a higher layer already has its path, whites it out (or an
/// ancestor), made an ancestor opaque, or needs the path to be a directory. Pass 2 merges the layers'
/// winners, each layer in its own order, picking the next entry in tree order among the layers' next
/// winners; so every layer is read once, front to back, and sorted layers give a sorted tar.
private final class StackExporter {
    /// One entry of the output, in tree order.
    private enum Item {
        /// A cloned header without content: a directory or a hard link.
        case header(OpaquePointer)
        /// Entry `ordinal` of layer `layer`, with its content, written as `path`.
        case content(layer: Int, ordinal: Int, path: String)
    }

    /// A winner at the position of entry `ordinal` of its layer.
    private struct Slot {
        var ordinal: Int
        var path: String
        var item: Item
    }

    /// The content entry of one layer that hard links of that layer share.
    private struct LinkGroup {
        var layer: Int
        var ordinal: Int
        var rootPath: String
        var rootWon: Bool
        /// The winning links, in layer order.
        var links: [(ordinal: Int, path: String, header: OpaquePointer)] = []
    }

    private let layers: [StackedLayer]
    private let outputPath: String
    private var report = StackExportReport()

    /// Paths whose final entry is decided.
    private var decided: Set<String> = []
    /// Paths hidden, with their subtrees, from lower layers.
    private var hiddenSubtrees: Set<String> = []
    /// Directories whose contents in lower layers are hidden.
    private var opaqueDirectories: Set<String> = []
    /// Ancestors of decided paths: a lower non-directory there would break the tree above it.
    private var impliedDirectories: Set<String> = []

    /// The winners of each layer.
    private var slots: [[Slot]]
    /// Hard-link groups with at least one winning link.
    private var groups: [LinkGroup] = []
    /// Cloned headers, freed with the exporter.
    private var headers: [OpaquePointer] = []

    init(layers: [StackedLayer], outputPath: String) {
        self.layers = layers
        self.outputPath = outputPath
        slots = Array(repeating: [], count: layers.count)
    }

    deinit {
        for header in headers { archive_entry_free(header) }
    }

    func export() throws -> StackExportReport {
        report.layers = layers.count
        for index in layers.indices.reversed() { try decide(layer: index) }
        try resolveLinkGroups()

        let directory = (outputPath as NSString).deletingLastPathComponent
        try FileManager.default.makeDirectory(directory.isEmpty ? "." : directory)
        let temporary = outputPath + ".tmp-" + UUID().uuidString
        let writer = try LayerWriter(outputPath: temporary, compression: .none)
        var readers = LayerReaders(layers: layers)
        for slot in mergedSlots() {
            switch slot.item {
            case .header(let header):
                try writer.write(entry: header, contentFrom: nil as String?)
            case .content(let layer, let ordinal, let path):
                let (entry, reader) = try readers.entry(layer: layer, ordinal: ordinal)
                archive_entry_copy_pathname(entry, path)
                archive_entry_set_nlink(entry, 1)
                Self.prepare(entry)
                try writer.write(entry: entry, contentFrom: reader)
            }
        }
        try readers.finish()
        report.entries = writer.entryCount
        _ = try writer.finish()
        guard rename(temporary, outputPath) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BoxstackError(.permission, "cannot move the stacked tree into \(outputPath): \(reason).")
        }
        return report
    }

    // MARK: Reading layers

    fileprivate func refuse(_ name: String, _ layer: StackedLayer, _ reason: String) -> BoxstackError {
        BoxstackError(
            .invalidData,
            "refusing the entry \(Terminal.quoted(name)) of \(layer.description): \(reason); the export to \(outputPath) stopped there.")
    }

    // MARK: Pass 1

    private func isVisible(_ path: String, isDirectory: Bool) -> Bool {
        if decided.contains(path) || hiddenSubtrees.contains(path) { return false }
        if !isDirectory, impliedDirectories.contains(path) { return false }
        var ancestor = Substring(path)
        while let slash = ancestor.lastIndex(of: "/") {
            ancestor = ancestor[..<slash]
            let key = String(ancestor)
            if hiddenSubtrees.contains(key) || opaqueDirectories.contains(key) { return false }
        }
        return true
    }

    private func markDecided(_ path: String) {
        decided.insert(path)
        var ancestor = Substring(path)
        while let slash = ancestor.lastIndex(of: "/") {
            ancestor = ancestor[..<slash]
            guard impliedDirectories.insert(String(ancestor)).inserted else { break }
        }
    }

    /// Decides the winners of layer `index`; its whiteouts (and its non-directories) hide lower layers only.
    private func decide(layer index: Int) throws {
        let layer = layers[index]
        let reader = try layer.open()
        var hiddenBelow: [String] = []
        var opaqueBelow: [String] = []
        /// Ordinal of the last content entry (not a hard link, not a directory) of each path in this layer.
        var contentOrdinal: [String: Int] = [:]
        /// For hard links of this layer: the content entry they share.
        var linkRoot: [String: String] = [:]
        var wonHere: Set<String> = []
        /// Index in `groups` of this layer's group for a content path.
        var groupOfRoot: [String: Int] = [:]

        var ordinal = -1
        while let entry = try reader.next() {
            ordinal += 1
            let rawName = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let meaning: LayerPath.Meaning
            do throws(LayerPath.UnsafeName) { meaning = try LayerPath.meaning(of: rawName) } catch { throw refuse(rawName, layer, error.reason) }
            let path: String
            switch meaning {
            case .root, .metadata: continue
            case .opaque(let directory):
                opaqueBelow.append(directory)
                continue
            case .whiteout(let hidden):
                hiddenBelow.append(hidden)
                continue
            case .path(let name): path = name
            }
            let isDirectory = archive_entry_filetype(entry) == ArchiveFileType.directory
            var linkTarget: String?
            if let link = archive_entry_hardlink(entry) {
                let rawTarget = String(cString: link)
                let target: String
                do throws(LayerPath.UnsafeName) { target = try LayerPath.normalized(rawTarget) } catch {
                    throw refuse(rawName, layer, "its hard link target \(Terminal.quoted(rawTarget)) is outside the tree")
                }
                let root = linkRoot[target] ?? target
                guard contentOrdinal[root] != nil else {
                    throw refuse(
                        rawName, layer, "its hard link target \(Terminal.quoted(rawTarget)) is not an earlier entry of the same layer")
                }
                linkRoot[path] = root
                linkTarget = root
            } else if !isDirectory {
                contentOrdinal[path] = ordinal
                linkRoot[path] = nil
                groupOfRoot[path] = nil
            }

            guard isVisible(path, isDirectory: isDirectory) else {
                report.hiddenEntries += 1
                continue
            }
            markDecided(path)
            wonHere.insert(path)
            if isDirectory {
                slots[index].append(Slot(ordinal: ordinal, path: path, item: .header(try clone(entry, path: path, hardlink: nil))))
                continue
            }
            // A non-directory hides whatever lower layers have below its path.
            hiddenBelow.append(path)
            guard let root = linkTarget, let rootOrdinal = contentOrdinal[root] else {
                slots[index].append(Slot(ordinal: ordinal, path: path, item: .content(layer: index, ordinal: ordinal, path: path)))
                continue
            }
            let header = try clone(entry, path: path, hardlink: root)
            if let group = groupOfRoot[root] {
                groups[group].links.append((ordinal, path, header))
            } else {
                groupOfRoot[root] = groups.count
                groups.append(
                    LinkGroup(layer: index, ordinal: rootOrdinal, rootPath: root, rootWon: wonHere.contains(root), links: [(ordinal, path, header)]))
            }
        }
        try reader.finish()
        hiddenSubtrees.formUnion(hiddenBelow)
        opaqueDirectories.formUnion(opaqueBelow)
    }

    /// Adds the hard links to the layers' winners: links to a winning content entry stay links to it; the
    /// links of a content entry that lost share its content, written under the first link's name at
    /// that entry's position (so every layer is still read front to back).
    private func resolveLinkGroups() throws {
        for group in groups {
            let carrier: String
            var links = group.links[...]
            if group.rootWon {
                carrier = group.rootPath
            } else {
                report.hardlinksCopied += 1
                guard let first = links.popFirst() else { continue }
                carrier = first.path
                slots[group.layer].append(
                    Slot(ordinal: group.ordinal, path: carrier, item: .content(layer: group.layer, ordinal: group.ordinal, path: carrier)))
            }
            for link in links {
                slots[group.layer].append(
                    Slot(ordinal: link.ordinal, path: link.path, item: .header(try clone(link.header, path: link.path, hardlink: carrier))))
            }
        }
        for index in slots.indices { slots[index].sort { $0.ordinal < $1.ordinal } }
    }

    /// All winners: the layers' winners merged, each layer's in its order, the next one always the first
    /// in tree order among the layers' next ones.
    private func mergedSlots() -> [Slot] {
        var next = Array(repeating: 0, count: slots.count)
        var merged: [Slot] = []
        merged.reserveCapacity(slots.reduce(0) { $0 + $1.count })
        while true {
            var best: Int?
            for index in slots.indices where next[index] < slots[index].count {
                if let current = best, !TreeManifest.precedes(slots[index][next[index]].path, slots[current][next[current]].path) {
                    continue
                }
                best = index
            }
            guard let best else { return merged }
            merged.append(slots[best][next[best]])
            next[best] += 1
        }
    }

    /// A header-only copy of `entry` named `path` (a hard link to `hardlink` when given), with numeric owners.
    private func clone(_ entry: OpaquePointer, path: String, hardlink: String?) throws -> OpaquePointer {
        guard let copy = archive_entry_clone(entry) else { throw BoxstackError(.internalError, "libarchive could not copy an entry.") }
        headers.append(copy)
        archive_entry_copy_pathname(copy, path)
        if let hardlink {
            archive_entry_copy_hardlink(copy, hardlink)
            archive_entry_set_size(copy, 0)
        }
        // One link per header: the writer must not pair entries up itself.
        archive_entry_set_nlink(copy, 1)
        Self.prepare(copy)
        return copy
    }

    /// Numeric owners only, no access or change times, no sparse map (content is copied in full).
    private static func prepare(_ entry: OpaquePointer) {
        archive_entry_set_uname(entry, nil)
        archive_entry_set_gname(entry, nil)
        archive_entry_unset_atime(entry)
        archive_entry_unset_ctime(entry)
        archive_entry_unset_birthtime(entry)
        archive_entry_sparse_clear(entry)
    }
}

/// One open reader per layer for pass 2, each positioned at a known entry ordinal; a layer is only
/// re-opened if an earlier entry is asked for, which the merge never does.
private struct LayerReaders {
    private let layers: [StackedLayer]
    private var readers: [Int: (reader: LayerReader, ordinal: Int)] = [:]

    init(layers: [StackedLayer]) {
        self.layers = layers
    }

    /// Entry `ordinal` of layer `layer`, with the reader positioned at its content.
    mutating func entry(layer: Int, ordinal: Int) throws -> (OpaquePointer, OpaquePointer) {
        if let open = readers[layer], open.ordinal >= ordinal { readers[layer] = nil }
        if readers[layer] == nil { readers[layer] = (try layers[layer].open(), -1) }
        guard let open = readers[layer] else { throw BoxstackError(.internalError, "no reader for \(layers[layer].description).") }
        var current = open.ordinal
        while true {
            guard let entry = try open.reader.next() else {
                throw BoxstackError(.invalidData, "\(layers[layer].description) changed while it was read; export again.")
            }
            current += 1
            readers[layer] = (open.reader, current)
            if current == ordinal { return (entry, open.reader.archive) }
        }
    }

    /// Reads every open layer to its end, checking its digests again.
    mutating func finish() throws {
        for open in readers.values { try open.reader.finish() }
        readers = [:]
    }
}
