import BoxstackCore
import CLibArchive
import Foundation

extension StashStore {
    /// The content of the regular file at `path` (relative to the root, such as `image/config.xml`) in
    /// the tree that `references` stack up to, or nil when that tree has nothing at `path`. The tree is
    /// the one `exportStack` writes (`LayerStackRules` decides it); nothing is extracted.
    ///
    /// A path that is not a regular file (a directory, a symbolic link) or is larger than `limit` bytes
    /// is refused, naming the layer. Each stash name is read under its shared lock, and the layer that
    /// holds the file is read to its end, so its digests are checked.
    public func file(_ path: String, in references: [StashReference], limit: Int64 = 16 << 20) throws -> Data? {
        try withStack(references) { layers in
            let plan = try LayerStackPlan(layers: layers) { name, layer, reason in
                BoxstackError(.invalidData, "refusing the entry \(Terminal.quoted(name)) of \(layer.description): \(reason).")
            }
            guard var slot = plan.merged.first(where: { $0.path == path }) else { return nil }
            // A hard link shares the content of the winner it names.
            if case .header(let header) = slot.item, let link = archive_entry_hardlink(header) {
                let target = String(cString: link)
                guard let content = plan.merged.first(where: { $0.path == target }) else {
                    throw BoxstackError(.internalError, "\(path) links to \(target), which is not in the stacked tree.")
                }
                slot = content
            }
            let stack = references.map(\.description).joined(separator: ", ")
            guard case .content(let layer, let ordinal, _) = slot.item else {
                throw BoxstackError(.invalidData, "\(path) in \(stack) is a directory, not a file.")
            }
            var readers = LayerReaders(layers: plan.layers)
            let (entry, reader) = try readers.entry(layer: layer, ordinal: ordinal)
            let place = "\(path) in \(plan.layers[layer].description)"
            guard archive_entry_filetype(entry) == ArchiveFileType.regular else {
                throw BoxstackError(.invalidData, "\(place) is not a regular file (a link or a special file).")
            }
            let size = archive_entry_size(entry)
            guard size <= limit else {
                throw BoxstackError(.invalidData, "\(place) has \(size) bytes, more than the \(limit) boxstack reads.")
            }
            var content = Data(count: Int(size))
            try reader.readData { block, offset in
                // Sparse files leave gaps between blocks; those stay zero.
                guard offset >= 0, offset + Int64(block.count) <= size else {
                    throw BoxstackError(.invalidData, "\(place) holds more data than its header says.")
                }
                content.replaceSubrange(Int(offset)..<Int(offset) + block.count, with: block)
            }
            try readers.finish()
            return content
        }
    }
}
