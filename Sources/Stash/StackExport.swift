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
    /// Hard links whose target a higher layer replaced or hid, written as regular files (see `exportStack`).
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
    /// directory's subtree, and later images win over earlier ones. The tar lists every directory first
    /// (parents before children), then the other entries, then the hard links, so link targets always
    /// precede their links.
    ///
    /// A hard link whose target a higher layer replaced or deleted keeps the content it had in its own
    /// layer (as it does when the layers are extracted one after another): the first such link is
    /// written as a regular file with that content, and further links to the same target link to it.
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
        var layers: [StackedLayer] = []
        for reference in references {
            let layout = try layout(name: reference.name)
            guard let (_, manifest) = try layout.manifest(tag: reference.tag, architecture: nil) else {
                throw BoxstackError(.notFound, "the stash \(reference.name) has no tag \(reference.tag); see boxstack stash --list.")
            }
            for (index, layer) in manifest.layers.enumerated() {
                guard layout.hasBlob(layer.digest) else {
                    throw BoxstackError(.notFound, "layer \(index + 1) (\(layer.digest)) of \(reference) is missing from the store.")
                }
                layers.append(StackedLayer(path: layout.blobPath(layer.digest), description: "layer \(index + 1) of \(reference)"))
            }
        }
        let exporter = StackExporter(layers: layers, outputPath: path)
        return try exporter.export()
    }
}

/// One layer blob of a stack, bottom first.
struct StackedLayer {
    let path: String
    let description: String
}

/// Flattens stacked layers into one tar in two passes over the layers.
///
/// Pass 1 reads only headers, top layer first, and decides which entry of which layer ends up in the
/// tree: an entry is visible unless a higher layer already has its path, whites it out (or an
/// ancestor), made an ancestor opaque, or needs the path to be a directory. Pass 2 writes the winners.
private final class StackExporter {
    /// What pass 2 does with a winning entry that carries content.
    private enum Disposition {
        /// Write it under its own name.
        case keep
        /// Write it under the given name: it is the target of a hard link whose own target lost.
        case renamed(String)
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

    /// Per layer: entry ordinal -> how to write it.
    private var dispositions: [[Int: Disposition]]
    /// Winning directories (cloned headers), written first.
    private var directories: [String: OpaquePointer] = [:]
    /// Winning hard links per layer (cloned headers, pointing at their final target), written last.
    private var hardlinks: [[OpaquePointer]]

    init(layers: [StackedLayer], outputPath: String) {
        self.layers = layers
        self.outputPath = outputPath
        dispositions = Array(repeating: [:], count: layers.count)
        hardlinks = Array(repeating: [], count: layers.count)
    }

    deinit {
        for entry in directories.values { archive_entry_free(entry) }
        for entry in hardlinks.joined() { archive_entry_free(entry) }
    }

    func export() throws -> StackExportReport {
        report.layers = layers.count
        for index in layers.indices.reversed() { try decide(layer: index) }

        let directory = (outputPath as NSString).deletingLastPathComponent
        try FileManager.default.makeDirectory(directory.isEmpty ? "." : directory)
        let temporary = outputPath + ".tmp-" + UUID().uuidString
        let writer = try LayerWriter(outputPath: temporary, compression: .none)
        for path in directories.keys.sorted(by: TreeManifest.precedes) {
            if let entry = directories[path] { try writer.write(entry: entry, contentFrom: nil as String?) }
        }
        for index in layers.indices where !dispositions[index].isEmpty { try write(layer: index, to: writer) }
        for entry in hardlinks.joined() { try writer.write(entry: entry, contentFrom: nil as String?) }
        report.entries = writer.entryCount
        _ = try writer.finish()
        guard rename(temporary, outputPath) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BoxstackError(.permission, "cannot move the stacked tree into \(outputPath): \(reason).")
        }
        return report
    }

    // MARK: Pass 1

    private func refuse(_ name: String, _ layer: StackedLayer, _ reason: String) -> BoxstackError {
        BoxstackError(
            .invalidData,
            "refusing the entry \(name.debugDescription) of \(layer.description): \(reason); the export to \(outputPath) stopped there.")
    }

    private func openLayer(_ layer: StackedLayer) throws -> OpaquePointer {
        guard let reader = archive_read_new() else { throw BoxstackError(.internalError, "libarchive could not allocate a reader.") }
        archive_read_support_format_tar(reader)
        archive_read_support_format_empty(reader)
        archive_read_support_filter_all(reader)
        guard archive_read_open_filename(reader, layer.path, 1 << 20) == ARCHIVE_OK else {
            let message = Self.message(reader)
            archive_read_free(reader)
            throw BoxstackError(.invalidData, "cannot read \(layer.description): \(message).")
        }
        return reader
    }

    private static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    /// Calls `body` with each entry of `layer` and its ordinal; `body` returns false to stop early.
    private func forEachEntry(of layer: StackedLayer, _ body: (OpaquePointer, Int, OpaquePointer) throws -> Bool) throws {
        let reader = try openLayer(layer)
        defer { archive_read_free(reader) }
        var entry: OpaquePointer?
        var ordinal = 0
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { return }
            guard status >= ARCHIVE_WARN, let entry else {
                throw BoxstackError(.invalidData, "\(layer.description) is damaged: \(Self.message(reader)).")
            }
            guard try body(entry, ordinal, reader) else { return }
            ordinal += 1
        }
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
        var hiddenBelow: [String] = []
        var opaqueBelow: [String] = []
        /// Ordinal of the last content entry (not a hard link, not a directory) of each path in this layer.
        var contentOrdinal: [String: Int] = [:]
        /// For hard links of this layer: the content entry they share.
        var linkRoot: [String: String] = [:]
        var wonHere: Set<String> = []
        /// Content entries that lost, with the hard link now carrying their content.
        var carrier: [String: String] = [:]

        try forEachEntry(of: layer) { entry, ordinal, _ in
            let rawName = String(cString: archive_entry_pathname(entry))
            let path: String
            do throws(LayerPath.UnsafeName) { path = try LayerPath.checked(rawName) } catch { throw refuse(rawName, layer, error.reason) }
            if path.isEmpty { return true }
            let (parent, name) = Self.split(path)
            if name == ".wh..wh..opq" {
                opaqueBelow.append(parent)
                return true
            }
            if name.hasPrefix(".wh.") {
                hiddenBelow.append(parent.isEmpty ? String(name.dropFirst(4)) : parent + "/" + name.dropFirst(4))
                return true
            }
            let isDirectory = archive_entry_filetype(entry) == ArchiveFileType.directory
            var linkTarget: String?
            if let link = archive_entry_hardlink(entry) {
                let rawTarget = String(cString: link)
                let target: String
                do { target = try LayerPath.checked(rawTarget) } catch {
                    throw refuse(rawName, layer, "its hard link target \(rawTarget.debugDescription) is outside the tree")
                }
                let root = linkRoot[target] ?? target
                guard contentOrdinal[root] != nil else {
                    throw refuse(rawName, layer, "its hard link target \(rawTarget.debugDescription) is not an earlier entry of the same layer")
                }
                linkRoot[path] = root
                linkTarget = root
            } else if !isDirectory {
                contentOrdinal[path] = ordinal
                linkRoot[path] = nil
            }

            guard isVisible(path, isDirectory: isDirectory) else {
                report.hiddenEntries += 1
                return true
            }
            markDecided(path)
            wonHere.insert(path)
            if isDirectory {
                directories[path] = try Self.clone(entry, path: path, hardlink: nil)
                return true
            }
            // A non-directory hides whatever lower layers have below its path.
            hiddenBelow.append(path)
            guard let root = linkTarget else {
                dispositions[index][ordinal] = .keep
                return true
            }
            if wonHere.contains(root) {
                hardlinks[index].append(try Self.clone(entry, path: path, hardlink: root))
            } else if let first = carrier[root] {
                hardlinks[index].append(try Self.clone(entry, path: path, hardlink: first))
            } else if let source = contentOrdinal[root] {
                carrier[root] = path
                dispositions[index][source] = .renamed(path)
                report.hardlinksCopied += 1
            }
            return true
        }
        hiddenSubtrees.formUnion(hiddenBelow)
        opaqueDirectories.formUnion(opaqueBelow)
    }

    private static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// A header-only copy of `entry` named `path` (a hard link to `hardlink` when given), with numeric owners.
    private static func clone(_ entry: OpaquePointer, path: String, hardlink: String?) throws -> OpaquePointer {
        guard let copy = archive_entry_clone(entry) else { throw BoxstackError(.internalError, "libarchive could not copy an entry.") }
        archive_entry_copy_pathname(copy, path)
        if let hardlink {
            archive_entry_copy_hardlink(copy, hardlink)
            archive_entry_set_size(copy, 0)
        }
        // One link per header: the writer must not try to pair these up itself.
        archive_entry_set_nlink(copy, 1)
        prepare(copy)
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

    // MARK: Pass 2

    /// Copies the winning content entries of layer `index`, with their data.
    private func write(layer index: Int, to writer: LayerWriter) throws {
        let layer = layers[index]
        let wanted = dispositions[index]
        guard let last = wanted.keys.max() else { return }
        try forEachEntry(of: layer) { entry, ordinal, reader in
            guard let disposition = wanted[ordinal] else { return ordinal < last }
            switch disposition {
            case .keep:
                let rawName = String(cString: archive_entry_pathname(entry))
                guard let path = LayerPath.normalized(rawName) else { throw refuse(rawName, layer, "the layer changed while it was read") }
                archive_entry_copy_pathname(entry, path)
            case .renamed(let path):
                archive_entry_copy_pathname(entry, path)
            }
            archive_entry_set_nlink(entry, 1)
            Self.prepare(entry)
            try writer.write(entry: entry, contentFrom: reader)
            return ordinal < last
        }
    }
}
