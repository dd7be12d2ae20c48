import BoxstackCore
import CLibArchive

/// What a stack of layers means: the one place that decides which entry of which layer ends up at
/// each path of the tree. `stash unpack` (`TreeUnpacker`) writes its decisions into a directory as it
/// reads; the stack export (`LayerStackPlan`) collects them and writes them into one tar.
///
/// Layers are given top first and each once, front to back, so no layer is decompressed twice. An
/// entry is visible unless a higher layer already has its path, whites it out (or an ancestor), made
/// an ancestor opaque, or needs the path to be a directory (it has something below it). A layer's
/// whiteouts and non-directories hide lower layers only; within a layer the first entry of a path
/// wins. Hard links must point at an earlier entry of their own layer: a link whose target a higher
/// layer hid keeps that target's content from its own layer (as it does when the layers are
/// extracted one after another), carried by the first such link, which the others then link to.
struct LayerStackRules {
    /// What one entry adds to the tree.
    enum Decision: Equatable {
        /// Nothing: a whiteout, an opaque marker, bookkeeping, or an entry a higher layer hid.
        case nothing
        /// The root directory's own entry, the topmost one (its owner, mode and times).
        case root
        /// The entry itself at `path`: a directory, or a non-directory with its own content.
        case entry(path: String)
        /// A hard link at `path` to `target`, a path this layer put in the tree.
        case link(path: String, target: String)
        /// A hard link at `path` whose target a higher layer hid: it gets the content and metadata of
        /// entry `ordinal` of this layer (the target), and later links to that target link to `path`.
        case carrier(path: String, ordinal: Int)
    }

    /// Why an entry is refused: its raw name and the reason.
    struct Refusal: Error {
        let name: String
        let reason: String
    }

    /// Entries of lower layers left out because a higher layer replaced or hid them.
    private(set) var hiddenEntries = 0
    /// Hard-link targets a higher layer hid whose links kept their content (see `Decision.carrier`).
    private(set) var carriedLinkTargets = 0

    /// Paths whose entry is decided.
    private var decided: Set<String> = []
    /// Paths hidden, with their subtrees, from lower layers.
    private var hiddenSubtrees: Set<String> = []
    /// Directories whose contents in lower layers are hidden.
    private var opaqueDirectories: Set<String> = []
    /// Ancestors of decided paths: a lower non-directory there would break the tree above it.
    private var impliedDirectories: Set<String> = []
    private var rootDecided = false

    /// The current layer's state: what it hides below itself, and its hard-link bookkeeping.
    private var hiddenBelow: [String] = []
    private var opaqueBelow: [String] = []
    /// Ordinal of the last content entry (not a hard link, not a directory) of each path.
    private var contentOrdinal: [String: Int] = [:]
    /// For this layer's hard links: the content path they share.
    private var linkRoot: [String: String] = [:]
    /// For each shared content path: the path in the tree its links link to.
    private var linkTarget: [String: String] = [:]
    /// Content paths of this layer that won.
    private var wonHere: Set<String> = []

    /// Reads `layer`, the next lower one, front to back and hands `body` each entry with its ordinal,
    /// what it adds to the tree and the reader (positioned at its content); the layer's digests are
    /// checked at its end. `refuse` words a refused entry for the caller.
    mutating func read(
        _ layer: StackedLayer, refuse: (Refusal, LayerReader) -> BoxstackError,
        each body: (_ entry: OpaquePointer, _ ordinal: Int, _ decision: Decision, _ reader: LayerReader) throws -> Void
    ) throws {
        beginLayer()
        let reader = try layer.open()
        var ordinal = -1
        while let entry = try reader.next() {
            ordinal += 1
            let decision: Decision
            do throws(Refusal) { decision = try decide(entry, ordinal: ordinal) } catch { throw refuse(error, reader) }
            try body(entry, ordinal, decision, reader)
        }
        try reader.finish()
    }

    /// Starts the next lower layer.
    private mutating func beginLayer() {
        hiddenSubtrees.formUnion(hiddenBelow)
        opaqueDirectories.formUnion(opaqueBelow)
        hiddenBelow = []
        opaqueBelow = []
        contentOrdinal = [:]
        linkRoot = [:]
        linkTarget = [:]
        wonHere = []
    }

    /// Decides entry number `ordinal` of the current layer.
    private mutating func decide(_ entry: OpaquePointer, ordinal: Int) throws(Refusal) -> Decision {
        let rawName = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        let meaning: LayerPath.Meaning
        do throws(LayerPath.UnsafeName) { meaning = try LayerPath.meaning(of: rawName) } catch {
            throw Refusal(name: rawName, reason: error.reason)
        }
        let path: String
        switch meaning {
        case .metadata: return .nothing
        case .root:
            guard archive_entry_filetype(entry) == ArchiveFileType.directory else {
                throw Refusal(name: rawName, reason: "the root can only be a directory")
            }
            if rootDecided { return .nothing }
            rootDecided = true
            return .root
        case .opaque(let directory):
            opaqueBelow.append(directory)
            return .nothing
        case .whiteout(let hidden):
            hiddenBelow.append(hidden)
            return .nothing
        case .path(let name): path = name
        }

        let isDirectory = archive_entry_filetype(entry) == ArchiveFileType.directory
        var sharedContent: String?
        if let link = archive_entry_hardlink(entry) {
            let rawTarget = String(cString: link)
            let target: String
            do throws(LayerPath.UnsafeName) { target = try LayerPath.normalized(rawTarget) } catch {
                throw Refusal(name: rawName, reason: "its hard link target \(Terminal.quoted(rawTarget)) is outside the tree")
            }
            let root = linkRoot[target] ?? target
            guard contentOrdinal[root] != nil else {
                throw Refusal(name: rawName, reason: "its hard link target \(Terminal.quoted(rawTarget)) is not an earlier entry of the same layer")
            }
            linkRoot[path] = root
            sharedContent = root
        } else if !isDirectory {
            contentOrdinal[path] = ordinal
            linkRoot[path] = nil
            linkTarget[path] = nil
        }

        guard isVisible(path, isDirectory: isDirectory) else {
            hiddenEntries += 1
            return .nothing
        }
        markDecided(path)
        if isDirectory { return .entry(path: path) }
        // A non-directory hides whatever lower layers have below its path.
        hiddenBelow.append(path)
        guard let root = sharedContent, let rootOrdinal = contentOrdinal[root] else {
            wonHere.insert(path)
            return .entry(path: path)
        }
        if let target = linkTarget[root] { return .link(path: path, target: target) }
        if wonHere.contains(root) {
            linkTarget[root] = root
            return .link(path: path, target: root)
        }
        linkTarget[root] = path
        carriedLinkTargets += 1
        return .carrier(path: path, ordinal: rootOrdinal)
    }

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

    private mutating func markDecided(_ path: String) {
        decided.insert(path)
        var ancestor = Substring(path)
        while let slash = ancestor.lastIndex(of: "/") {
            ancestor = ancestor[..<slash]
            guard impliedDirectories.insert(String(ancestor)).inserted else { break }
        }
    }
}
