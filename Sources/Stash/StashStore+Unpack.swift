import BoxstackCore
import Foundation
import OCI

extension StashStore {
    // MARK: Unpack

    /// Builds the tree the images `references` mean (bottom first; later images over earlier ones,
    /// with OCI whiteout semantics) in `root`, which must be missing or empty: the same tree
    /// `exportStack` writes as a tar, decided by the same `LayerStackRules`.
    ///
    /// Nothing outside `root` changes (see `TreeUnpacker`); an entry that cannot be written inside it
    /// (a name with `..`, a whiteout that names nothing, a path below a non-directory) stops the
    /// unpack, naming the entry. As non-root, owners and device nodes that cannot be restored are
    /// counted in the report instead of failing.
    @discardableResult
    public func unpack(_ references: [StashReference], into root: String) throws -> UnpackReport {
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: root), !existing.isEmpty {
            throw BoxstackError(
                .invalidArgument,
                "\(root) is not empty: an unpack builds the stacked tree in a new or empty directory, so that nothing already there is overwritten or mixed into it."
            )
        }
        return try withStack(references) { layers in
            // A blob changed in the store is refused before anything is written; the readers check again as they stream.
            for layer in layers { try layer.verify() }
            try FileManager.default.makeDirectory(root)
            return try TreeUnpacker(root: root).unpack(layers)
        }
    }

    /// Runs `body` with the layers of `references`, each stash name read under its shared lock.
    func withStack<T>(_ references: [StashReference], _ body: ([StackedLayer]) throws -> T) throws -> T {
        let names = Array(Set(references.map(\.name))).sorted()
        let locks = try names.map { try lock(name: $0, shared: true) }
        defer { _ = locks }
        return try body(try stackedLayers(references))
    }

    /// The layers of `references`, bottom first, with the digests and diffIDs their images record.
    func stackedLayers(_ references: [StashReference]) throws -> [StackedLayer] {
        var layers: [StackedLayer] = []
        for reference in references {
            let layout = try layout(name: reference.name)
            guard let (_, manifest) = try layout.manifest(tag: reference.tag, architecture: nil) else {
                throw BoxstackError(.notFound, "the stash \(reference.name) has no tag \(reference.tag); see boxstack stash --list.")
            }
            let config = try layout.readJSON(ImageConfig.self, manifest.config.digest)
            guard config.rootfs.diffIDs.count == manifest.layers.count else {
                throw BoxstackError(
                    .invalidData,
                    "\(reference) is damaged: its manifest lists \(manifest.layers.count) layers but its configuration \(config.rootfs.diffIDs.count) diffIDs."
                )
            }
            for (index, layer) in manifest.layers.enumerated() {
                guard layout.hasBlob(layer.digest) else {
                    throw BoxstackError(.notFound, "layer \(index + 1) (\(layer.digest)) of \(reference) is missing from the store.")
                }
                layers.append(
                    StackedLayer(
                        path: layout.blobPath(layer.digest), description: "layer \(index + 1) of \(reference)",
                        digests: LayerDigests(digest: layer.digest, diffID: config.rootfs.diffIDs[index])))
            }
        }
        return layers
    }
}

/// One layer blob of a stack, bottom first.
struct StackedLayer {
    let path: String
    let description: String
    let digests: LayerDigests

    func open() throws -> LayerReader { try LayerReader(path: path, description: description, expected: digests) }

    /// Checks the blob's digest without unpacking it.
    func verify() throws {
        let (digest, _) = try ContentDigest.ofFile(path)
        guard digest == digests.digest else {
            throw BoxstackError(
                .checksumMismatch,
                "\(description): the blob \(path) has the digest \(digest), not \(digests.digest); it was changed after it was stored. Pull or stash it again."
            )
        }
    }
}
