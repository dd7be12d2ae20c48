import BoxstackCore
import CLibArchive
import Foundation

/// What a stack of layers means, decided without extracting anything: which entry of which layer
/// ends up at each path of the tree. The stack export of a boxed stackbuild writes these winners into
/// one tar that the box extracts. (`stash unpack` applies the layers one after another instead, as
/// container runtimes do: deciding first would decompress every layer twice, which made an unpack of
/// gzip layers 1.6 times slower; see Scripts/bench/stash.)
///
/// It reads only headers, top layer first: an entry is visible unless a higher layer already has its
/// path, whites it out (or an ancestor), made an ancestor opaque, or needs the path to be a directory.
/// `merged` then lists the layers' winners, each layer in its own order, the next one always the first
/// in tree order among the layers' next winners; so every layer is read once, front to back, by
/// `LayerReaders`, and sorted layers give a sorted tree. Link targets always precede their links.
final class LayerStackPlan {
    /// One entry of the tree, in tree order.
    enum Item {
        /// A cloned header without content: a directory or a hard link.
        case header(OpaquePointer)
        /// Entry `ordinal` of layer `layer`, with its content, written as `path`.
        case content(layer: Int, ordinal: Int, path: String)
    }

    /// A winner at the position of entry `ordinal` of its layer.
    struct Slot {
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

    let layers: [StackedLayer]
    /// Refuses an entry (name, layer, reason), in the words of the plan's user.
    private let refuse: (String, StackedLayer, String) -> BoxstackError
    /// Entries of lower layers left out because a higher layer replaced or hid them.
    private(set) var hiddenEntries = 0
    /// Hard-link groups whose shared file a higher layer replaced or hid (see `resolveLinkGroups`).
    private(set) var hardlinksCopied = 0
    /// Every winner, in tree order.
    private(set) var merged: [Slot] = []

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

    init(layers: [StackedLayer], refuse: @escaping (String, StackedLayer, String) -> BoxstackError) throws {
        self.layers = layers
        self.refuse = refuse
        slots = Array(repeating: [], count: layers.count)
        for index in layers.indices.reversed() { try decide(layer: index) }
        try resolveLinkGroups()
        merged = mergedSlots()
    }

    deinit {
        for header in headers { archive_entry_free(header) }
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
            case .metadata: continue
            case .root:
                guard archive_entry_filetype(entry) == ArchiveFileType.directory else {
                    throw refuse(rawName, layer, "the root can only be a directory")
                }
                continue
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
                hiddenEntries += 1
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
                hardlinksCopied += 1
                guard let first = links.popFirst() else { continue }
                carrier = first.path
                slots[group.layer].append(
                    Slot(
                        ordinal: group.ordinal, path: carrier,
                        item: .content(layer: group.layer, ordinal: group.ordinal, path: carrier)))
            }
            for link in links {
                slots[group.layer].append(
                    Slot(
                        ordinal: link.ordinal, path: link.path,
                        item: .header(try clone(link.header, path: link.path, hardlink: carrier))))
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
    static func prepare(_ entry: OpaquePointer) {
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
struct LayerReaders {
    private let layers: [StackedLayer]
    private var readers: [Int: (reader: LayerReader, ordinal: Int)] = [:]

    init(layers: [StackedLayer]) {
        self.layers = layers
    }

    /// Entry `ordinal` of layer `layer`, with its reader positioned at its content.
    mutating func entry(layer: Int, ordinal: Int) throws -> (OpaquePointer, LayerReader) {
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
            if current == ordinal { return (entry, open.reader) }
        }
    }

    /// Reads every open layer to its end, checking its digests again.
    mutating func finish() throws {
        for open in readers.values { try open.reader.finish() }
        readers = [:]
    }
}
