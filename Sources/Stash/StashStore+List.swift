import BoxstackCore
import Foundation
import OCI

#if canImport(Glibc)
    import Glibc
#endif

extension StashStore {
    // MARK: List and remove

    /// Every stash name in the store with its tags, sorted by name.
    public func list() throws -> [StashSummary] {
        StoreTemporary.sweep(store: directory)
        var summaries: [StashSummary] = []
        for name in stashNames() {
            let lock = try lock(name: name, shared: true)
            defer { _ = lock }
            guard let layout = try? OCILayout(opening: layoutPath(name: name)) else { continue }
            var tags: [StashTagSummary] = []
            for descriptor in try layout.index().manifests {
                guard let tag = descriptor.refName, let (_, manifest) = try? layout.resolveManifest(descriptor) else { continue }
                let config = try? layout.readJSON(ImageConfig.self, manifest.config.digest)
                tags.append(
                    StashTagSummary(
                        tag: tag, digest: descriptor.digest.description, layerCount: manifest.layers.count,
                        size: manifest.layers.reduce(0) { $0 + $1.size }, created: config?.created))
            }
            let blobs = (try? FileManager.default.contentsOfDirectory(atPath: layout.path + "/blobs/sha256")) ?? []
            let total = blobs.compactMap { ContentDigest("sha256:" + $0).flatMap(layout.blobSize) }.reduce(0, +)
            summaries.append(StashSummary(name: name, tags: tags, totalSize: total))
        }
        return summaries
    }

    /// Names of the stashes: every directory of the store holding an `oci-layout` file.
    private func stashNames() -> [String] {
        let children = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return children.filter { !$0.hasPrefix(".") && OCILayout.exists(at: directory + "/" + $0) }
            .map { $0.replacingOccurrences(of: "+", with: "/") }.sorted()
    }

    /// Removes tag `tag` of stash `name` (the whole stash when `tag` is nil or its last tag goes) and
    /// deletes blobs nothing refers to any more.
    public func remove(name: String, tag: String? = nil) throws {
        let lock = try lock(name: name)
        defer { _ = lock }
        let layout = try layout(name: name)
        if let tag {
            guard try layout.removeTag(tag) else {
                throw BoxstackError(.notFound, "the stash \(name) has no tag \(tag); see boxstack stash --list.")
            }
            if try !layout.tags().isEmpty {
                try layout.garbageCollect()
                return
            }
        }
        // Move the layout aside first so no reader ever sees a half-deleted one.
        let trash = try StoreTemporary(store: directory)
        guard rename(layout.path, trash.path) == 0 else {
            trash.discard()
            throw BoxstackError(.permission, "cannot remove \(layout.path): \(String(cString: strerror(errno))).")
        }
        trash.discard()
    }
}
