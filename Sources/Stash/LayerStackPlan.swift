import BoxstackCore
import CLibArchive
import Foundation

/// The tree a stack of layers means, as a list of entries in tree order, decided without extracting
/// anything: the stack export of a boxed stackbuild writes it into one tar that the box extracts.
///
/// It reads only headers, top layer first, and keeps what `LayerStackRules` decides. `merged` then
/// lists the layers' winners, each layer in its own order, the next one always the first in tree
/// order among the layers' next winners; so every layer is read once more, front to back, by
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

    let layers: [StackedLayer]
    /// Entries of lower layers left out because a higher layer replaced or hid them.
    let hiddenEntries: Int
    /// Hard-link targets a higher layer hid whose links kept their content (see `LayerStackRules`).
    let hardlinksCopied: Int
    /// Every winner, in tree order.
    private(set) var merged: [Slot] = []

    /// The headers of `merged`, freed with the plan.
    private let headers: ClonedHeaders

    /// `refuse` words a refused entry (name, layer, reason) for the plan's user.
    init(layers: [StackedLayer], refuse: (String, StackedLayer, String) -> BoxstackError) throws {
        self.layers = layers
        let headers = ClonedHeaders()
        var rules = LayerStackRules()
        var slots: [[Slot]] = Array(repeating: [], count: layers.count)
        for index in layers.indices.reversed() {
            let refuseEntry = { (refusal: LayerStackRules.Refusal, _: LayerReader) in refuse(refusal.name, layers[index], refusal.reason) }
            try rules.read(
                layers[index], refuse: refuseEntry,
                each: { entry, ordinal, decision, _ in
                    switch decision {
                    case .nothing, .root: return
                    case .entry(let path):
                        let item: Item =
                            archive_entry_filetype(entry) == ArchiveFileType.directory
                            ? .header(try headers.clone(entry, path: path, hardlink: nil)) : .content(layer: index, ordinal: ordinal, path: path)
                        slots[index].append(Slot(ordinal: ordinal, path: path, item: item))
                    case .link(let path, let target):
                        slots[index].append(Slot(ordinal: ordinal, path: path, item: .header(try headers.clone(entry, path: path, hardlink: target))))
                    case .carrier(let path, let targetOrdinal):
                        // At the target's position, so the layer is still read front to back.
                        slots[index].append(
                            Slot(ordinal: targetOrdinal, path: path, item: .content(layer: index, ordinal: targetOrdinal, path: path)))
                    }
                })
        }
        self.headers = headers
        hiddenEntries = rules.hiddenEntries
        hardlinksCopied = rules.carriedLinkTargets
        for index in slots.indices { slots[index].sort { $0.ordinal < $1.ordinal } }
        merged = Self.merge(slots)
    }

    /// All winners: the layers' winners merged, each layer's in its order, the next one always the first
    /// in tree order among the layers' next ones.
    private static func merge(_ slots: [[Slot]]) -> [Slot] {
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

/// Header-only copies of entries, freed together.
private final class ClonedHeaders {
    private var headers: [OpaquePointer] = []

    deinit {
        for header in headers { archive_entry_free(header) }
    }

    /// A copy of `entry` named `path` (a hard link to `hardlink` when given), with numeric owners.
    func clone(_ entry: OpaquePointer, path: String, hardlink: String?) throws -> OpaquePointer {
        guard let copy = archive_entry_clone(entry) else { throw BoxstackError(.internalError, "libarchive could not copy an entry.") }
        headers.append(copy)
        archive_entry_copy_pathname(copy, path)
        if let hardlink {
            archive_entry_copy_hardlink(copy, hardlink)
            archive_entry_set_size(copy, 0)
        }
        // One link per header: the writer must not pair entries up itself.
        archive_entry_set_nlink(copy, 1)
        LayerStackPlan.prepare(copy)
        return copy
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
                throw BoxstackError(.invalidData, "\(layers[layer].description) changed while it was read; run the command again.")
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
