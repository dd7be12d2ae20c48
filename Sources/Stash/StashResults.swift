import BoxstackCore
import OCI

/// What a stash operation wrote.
public struct StashResult: Sendable {
    /// The stash that now points at the new image.
    public var reference: StashReference
    /// The new image manifest's descriptor.
    public var manifest: Descriptor
    /// The layer this operation added; nil when the tree had not changed and the tag now points at the
    /// image it extends.
    public var layer: Descriptor?
    /// Number of layers of the image after this operation.
    public var layerCount: Int
    /// Number of tar entries in the new layer (whiteouts included).
    public var entryCount: Int
    /// Number of whiteouts in the new layer.
    public var whiteoutCount: Int

    /// One line for the user, e.g. `stashed web:1: 2 layers, new layer 1.2 MiB (40 entries, 3 deleted)`.
    public var summary: String {
        let layers = layerCount == 1 ? "1 layer" : "\(layerCount) layers"
        guard let layer else { return "\(reference) is unchanged: \(layers), no new layer" }
        return "stashed \(reference): \(layers), new layer \(ByteCount.format(layer.size)) (\(entryCount) entries, \(whiteoutCount) deleted)"
    }
}

/// One tag of a stash, as listed.
public struct StashTagSummary: Codable, Sendable, Equatable {
    public var tag: String
    public var digest: String
    public var layerCount: Int
    /// Sum of the compressed layer sizes.
    public var size: Int64
    /// Creation time (RFC 3339), from the image configuration.
    public var created: String?
}

/// One stash name with its tags, as listed by `StashStore.list()`.
public struct StashSummary: Codable, Sendable, Equatable {
    public var name: String
    public var tags: [StashTagSummary]
    /// Bytes of all blobs stored for this name (layers shared between tags counted once).
    public var totalSize: Int64
}
