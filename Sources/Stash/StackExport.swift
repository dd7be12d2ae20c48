import BoxstackCore
import CLibArchive
import Foundation

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
    /// place when complete (`AtomicFile`).
    @discardableResult
    public func exportStack(_ references: [StashReference], toTar path: String) throws -> StackExportReport {
        try withStack(references) { layers in try StackExporter(layers: layers, outputPath: path).export() }
    }
}

/// Flattens stacked layers into one tar, the winners of a `LayerStackPlan` in its order.
private final class StackExporter {
    private let plan: LayerStackPlan
    private let outputPath: String

    init(layers: [StackedLayer], outputPath: String) throws {
        self.outputPath = outputPath
        plan = try LayerStackPlan(layers: layers) { name, layer, reason in
            BoxstackError(
                .invalidData,
                "refusing the entry \(Terminal.quoted(name)) of \(layer.description): \(reason); the export to \(outputPath) stopped there.")
        }
    }

    func export() throws -> StackExportReport {
        let directory = (outputPath as NSString).deletingLastPathComponent
        try FileManager.default.makeDirectory(directory.isEmpty ? "." : directory)
        var entries = 0
        try AtomicFile.replace(outputPath) { temporary in
            let writer = try LayerWriter(outputPath: temporary, compression: .none)
            var readers = LayerReaders(layers: plan.layers)
            for slot in plan.merged {
                switch slot.item {
                case .header(let header):
                    try writer.write(entry: header, contentFrom: nil as String?)
                case .content(let layer, let ordinal, let path):
                    let (entry, reader) = try readers.entry(layer: layer, ordinal: ordinal)
                    archive_entry_copy_pathname(entry, path)
                    archive_entry_set_nlink(entry, 1)
                    LayerStackPlan.prepare(entry)
                    try writer.write(entry: entry, contentFrom: reader.archive)
                }
            }
            try readers.finish()
            entries = writer.entryCount
            _ = try writer.finish()
        }
        return StackExportReport(
            layers: plan.layers.count, entries: entries, hiddenEntries: plan.hiddenEntries, hardlinksCopied: plan.hardlinksCopied)
    }
}
