import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An OCI image-layout directory: `oci-layout`, `index.json` and content-addressed `blobs/sha256/<hex>`.
///
/// Tags are the `org.opencontainers.image.ref.name` annotations of index.json entries, so
/// `skopeo inspect oci:PATH:TAG` and `umoci unpack --image PATH:TAG` read what this type writes.
/// Every write goes to a temporary file in the layout and is renamed into place, so readers never
/// see a half-written blob or index. Writers that read-modify-write index.json (`setTag`,
/// `removeTag`, `garbageCollect`) must be serialized by the caller (e.g. with a `FileLock`).
public struct OCILayout: Sendable {
    /// The layout's directory.
    public let path: String

    /// The content of the `oci-layout` file.
    public static let layoutFileContent = Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)

    /// Opens the layout at `path`, creating the directory, `oci-layout`, an empty `index.json` and
    /// `blobs/sha256` when they are missing.
    public static func create(at path: String) throws -> OCILayout {
        let layout = OCILayout(unchecked: path)
        do {
            try FileManager.default.makeDirectory(layout.blobsDirectory)
        } catch {
            throw BoxstackError(.permission, "cannot create the image layout \(path): \(error.localizedDescription).", cause: error)
        }
        if !FileManager.default.fileExists(atPath: path + "/oci-layout") {
            try layoutFileContent.writeAtomically(to: path + "/oci-layout")
        }
        if !FileManager.default.fileExists(atPath: layout.indexPath) {
            try layout.writeIndex(ImageIndex())
        }
        return layout
    }

    /// Opens an existing layout; throws `notFound` when `path` has no `oci-layout` file.
    public init(opening path: String) throws {
        guard FileManager.default.fileExists(atPath: path + "/oci-layout") else {
            throw BoxstackError(.notFound, "\(path) is not an OCI image layout (it has no oci-layout file).")
        }
        self.init(unchecked: path)
    }

    private init(unchecked path: String) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// True when `path` holds an `oci-layout` file.
    public static func exists(at path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/oci-layout")
    }

    private var blobsDirectory: String { path + "/blobs/sha256" }
    private var indexPath: String { path + "/index.json" }

    // MARK: Blobs

    /// Where the blob with `digest` is (or would be) stored.
    public func blobPath(_ digest: ContentDigest) -> String { "\(path)/blobs/\(digest.algorithm)/\(digest.hex)" }

    /// True when the blob with `digest` is stored.
    public func hasBlob(_ digest: ContentDigest) -> Bool {
        FileManager.default.fileExists(atPath: blobPath(digest))
    }

    /// The size of a stored blob, or nil when it is missing.
    public func blobSize(_ digest: ContentDigest) -> Int64? {
        var info = stat()
        guard stat(blobPath(digest), &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// A fresh path inside the layout for writing a blob before `importBlob` renames it into place.
    ///
    /// It lies on the layout's file system, so the final rename is atomic and copies nothing.
    public func temporaryBlobPath() -> String {
        "\(path)/blobs/.tmp-\(UUID().uuidString)"
    }

    /// Stores `data` as a blob and returns its digest (writing nothing when it is already there).
    @discardableResult
    public func writeBlob(_ data: Data) throws -> ContentDigest {
        let digest = ContentDigest.of(data)
        if !hasBlob(digest) {
            try data.writeAtomically(to: blobPath(digest), mode: 0o644)
        }
        return digest
    }

    /// Stores `data` as a blob and returns a descriptor of it with `mediaType`.
    public func writeBlob(_ data: Data, mediaType: String) throws -> Descriptor {
        Descriptor(mediaType: mediaType, digest: try writeBlob(data), size: Int64(data.count))
    }

    /// Moves the file at `source` into the store as a blob.
    ///
    /// With `expectedDigest`, the file is hashed first and a mismatch throws `checksumMismatch`, leaving
    /// the store unchanged and `source` in place. Pass `verified: true` only when the caller computed
    /// `expectedDigest` from exactly these bytes itself (e.g. while writing them). The file is renamed
    /// into place when `source` is on the layout's file system (see `temporaryBlobPath()`), copied
    /// through a temporary file otherwise. Returns the blob's digest and size.
    @discardableResult
    public func importBlob(
        fromFile source: String, expectedDigest: ContentDigest? = nil, verified: Bool = false
    ) throws -> (digest: ContentDigest, size: Int64) {
        let digest: ContentDigest
        let size: Int64
        if let expectedDigest, verified {
            var info = stat()
            guard stat(source, &info) == 0 else {
                throw BoxstackError(.notFound, "cannot read \(source): \(String(cString: strerror(errno))).")
            }
            (digest, size) = (expectedDigest, Int64(info.st_size))
        } else {
            (digest, size) = try ContentDigest.ofFile(source)
            if let expectedDigest, expectedDigest != digest {
                throw BoxstackError(
                    .checksumMismatch,
                    "the blob \(source) has digest \(digest) but \(expectedDigest) was expected; it was not stored.")
            }
        }
        let destination = blobPath(digest)
        if hasBlob(digest) {
            unlink(source)
            return (digest, size)
        }
        chmod(source, 0o644)
        if rename(source, destination) == 0 { return (digest, size) }
        guard errno == EXDEV else {
            throw BoxstackError(.permission, "cannot move \(source) to \(destination): \(String(cString: strerror(errno))).")
        }
        // FileManager copies only onto a name that does not exist yet.
        let staged = try AtomicFile.Staged(for: destination, create: false)
        do {
            try FileManager.default.copyItem(atPath: source, toPath: staged.temporaryPath)
        } catch {
            staged.discard()
            throw BoxstackError(.permission, "cannot copy \(source) into \(path): \(error.localizedDescription).", cause: error)
        }
        chmod(staged.temporaryPath, 0o644)
        try staged.commit()
        unlink(source)
        return (digest, size)
    }

    /// Reads a whole blob; throws `notFound` when it is missing.
    public func readBlob(_ digest: ContentDigest) throws -> Data {
        guard let data = FileManager.default.contents(atPath: blobPath(digest)) else {
            throw BoxstackError(.notFound, "the blob \(digest) is missing from \(path).")
        }
        return data
    }

    /// Reads a small JSON blob and decodes it as `type`, checking its digest on the way.
    public func readJSON<T: Decodable>(_ type: T.Type, _ digest: ContentDigest) throws -> T {
        let data = try readBlob(digest)
        guard ContentDigest.of(data) == digest else {
            throw BoxstackError(.checksumMismatch, "the blob \(digest) in \(path) is corrupt (its content has another digest).")
        }
        return try OCIJSON.decode(type, from: data, what: "blob \(digest) in \(path)")
    }

    // MARK: Index and tags

    /// The layout's index.json.
    public func index() throws -> ImageIndex {
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw BoxstackError(.notFound, "\(path) has no readable index.json.")
        }
        return try OCIJSON.decode(ImageIndex.self, from: data, what: indexPath)
    }

    /// Replaces index.json atomically.
    public func writeIndex(_ index: ImageIndex) throws {
        try OCIJSON.encode(index).writeAtomically(to: indexPath)
    }

    /// The tags in index.json, in index order.
    public func tags() throws -> [String] {
        try index().manifests.compactMap(\.refName)
    }

    /// The index.json entry tagged `tag`, or nil.
    public func descriptor(tag: String) throws -> Descriptor? {
        try index().manifests.last { $0.refName == tag }
    }

    /// The image manifest tagged `tag` with its descriptor, or nil when the tag does not exist.
    ///
    /// When the tag names an index, the manifest for `architecture` (Go naming, e.g. `amd64`; the
    /// first one when nil) is returned.
    public func manifest(tag: String, architecture: String? = nil) throws -> (descriptor: Descriptor, manifest: Manifest)? {
        guard let descriptor = try descriptor(tag: tag) else { return nil }
        return try resolveManifest(descriptor, architecture: architecture)
    }

    /// Follows `descriptor` (a manifest, or an index of manifests) to an image manifest; indexes
    /// nested deeper than `ImageIndex.maximumNestingDepth` are an `invalidData` error.
    public func resolveManifest(_ descriptor: Descriptor, architecture: String? = nil) throws -> (descriptor: Descriptor, manifest: Manifest) {
        try resolveManifest(descriptor, architecture: architecture, indexesAbove: 0)
    }

    private func resolveManifest(
        _ descriptor: Descriptor, architecture: String?, indexesAbove: Int
    ) throws -> (descriptor: Descriptor, manifest: Manifest) {
        if MediaType.indexes.contains(descriptor.mediaType) {
            guard indexesAbove < ImageIndex.maximumNestingDepth else {
                throw ImageIndex.nestedTooDeep(descriptor.digest, in: path)
            }
            let nested = try readJSON(ImageIndex.self, descriptor.digest)
            let candidates = nested.manifests.filter { MediaType.manifests.contains($0.mediaType) || MediaType.indexes.contains($0.mediaType) }
            let chosen = candidates.first { architecture == nil || $0.platform?.architecture == architecture }
            guard let chosen else {
                throw BoxstackError(
                    .notFound, "the image index \(descriptor.digest) in \(path) has no manifest for \(architecture ?? "any platform").")
            }
            return try resolveManifest(chosen, architecture: architecture, indexesAbove: indexesAbove + 1)
        }
        return (descriptor, try readJSON(Manifest.self, descriptor.digest))
    }

    /// Points `tag` at `descriptor` (replacing the tag's previous entry) and rewrites index.json atomically.
    public func setTag(_ tag: String, to descriptor: Descriptor) throws {
        var index = try index()
        var entry = descriptor
        var annotations = entry.annotations ?? [:]
        annotations[AnnotationKey.refName] = tag
        entry.annotations = annotations
        index.manifests.removeAll { $0.refName == tag }
        index.manifests.append(entry)
        try writeIndex(index)
    }

    /// Removes `tag` from index.json; returns false when it did not exist. Blobs stay until `garbageCollect()`.
    @discardableResult
    public func removeTag(_ tag: String) throws -> Bool {
        var index = try index()
        let before = index.manifests.count
        index.manifests.removeAll { $0.refName == tag }
        guard index.manifests.count != before else { return false }
        try writeIndex(index)
        return true
    }

    // MARK: Garbage collection

    /// Digests of every blob reachable from index.json.
    ///
    /// Reachable are the indexed manifests, nested indexes, configs, layers, subjects, and any blob
    /// named by a manifest annotation whose value is a `sha256:` digest (boxstack keeps side data such
    /// as the tree manifest that way).
    public func reachableBlobs() throws -> Set<ContentDigest> {
        var reachable: Set<ContentDigest> = []
        var pending = try index().manifests
        while let descriptor = pending.popLast() {
            guard reachable.insert(descriptor.digest).inserted else { continue }
            for value in (descriptor.annotations ?? [:]).values {
                if let digest = ContentDigest(value) { reachable.insert(digest) }
            }
            if MediaType.indexes.contains(descriptor.mediaType), hasBlob(descriptor.digest) {
                pending += try readJSON(ImageIndex.self, descriptor.digest).manifests
            } else if MediaType.manifests.contains(descriptor.mediaType), hasBlob(descriptor.digest) {
                let manifest = try readJSON(Manifest.self, descriptor.digest)
                reachable.insert(manifest.config.digest)
                for layer in manifest.layers { reachable.insert(layer.digest) }
                if let subject = manifest.subject { pending.append(subject) }
                for value in (manifest.annotations ?? [:]).values {
                    if let digest = ContentDigest(value) { reachable.insert(digest) }
                }
            }
        }
        return reachable
    }

    /// Deletes every blob not reachable from index.json (see `reachableBlobs()`) and stale temporary
    /// files; returns how many blobs and bytes were removed.
    @discardableResult
    public func garbageCollect() throws -> (blobs: Int, bytes: Int64) {
        let reachable = try reachableBlobs()
        var removed = 0
        var bytes: Int64 = 0
        let names = (try? FileManager.default.contentsOfDirectory(atPath: blobsDirectory)) ?? []
        for name in names {
            guard let digest = ContentDigest("sha256:" + name), !reachable.contains(digest) else { continue }
            let size = blobSize(digest) ?? 0
            if unlink(blobPath(digest)) == 0 {
                removed += 1
                bytes += size
            }
        }
        let oneDayAgo = Date().addingTimeInterval(-86_400)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path + "/blobs")) ?? [] where name.hasPrefix(".tmp-") {
            let temporary = path + "/blobs/" + name
            let modified = (try? FileManager.default.attributesOfItem(atPath: temporary)[.modificationDate] as? Date) ?? Date()
            if modified < oneDayAgo { unlink(temporary) }
        }
        return (removed, bytes)
    }
}
