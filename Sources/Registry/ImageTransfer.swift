import BoxstackCore
import Foundation
import OCI

#if canImport(Glibc)
    import Glibc
#endif

/// Copies images between an `OCILayout` and a registry, blob by blob, with bounded parallelism.
///
/// Blobs already on the receiving side are skipped. Every pulled blob is verified against its digest
/// before it enters the layout, and the tag is written last, so a failed pull leaves the layout's
/// index and tags unchanged. Images are stored exactly as they were sent (Docker v2 schema 2
/// manifests and gzip layers stay as they are), so digests stay the same on both sides.
public struct ImageTransfer: Sendable {
    /// The client for the registry; its `registry` must match the references given.
    public let client: any RegistryAccess
    /// How many blobs move at once.
    public var parallelism: Int
    /// Draw one progress bar per image transfer on standard error (only on a terminal).
    public var showProgress: Bool

    public init(client: any RegistryAccess, parallelism: Int = 4, showProgress: Bool = ProgressBar.isTerminal) {
        self.client = client
        self.parallelism = max(1, parallelism)
        self.showProgress = showProgress
    }

    /// The platform of this machine (`linux/amd64`, `linux/arm64`), used to pick an image from an index.
    public static var hostPlatform: Platform {
        Platform(architecture: Platform.goArchitecture(hostArchitecture), os: "linux")
    }

    // MARK: Push

    /// Pushes the image tagged `tag` in `layout` to `reference` and returns the pushed manifest's digest.
    ///
    /// Config and layers go first (skipping those the repository has, and mounting from `mountFrom`, a
    /// repository of the same registry, where possible), then the manifest under `reference`'s tag.
    /// A tag naming an index pushes every listed manifest by digest, then the index.
    @discardableResult
    public func push(layout: OCILayout, tag: String, to reference: ImageReference, mountFrom: String? = nil)
        async throws -> ContentDigest
    {
        try checkRegistry(reference)
        guard let top = try layout.descriptor(tag: tag) else {
            throw BoxstackError(.notFound, "\(layout.path) has no image tagged \(tag).")
        }
        var manifests: [Descriptor] = []
        var blobs: [ContentDigest: Descriptor] = [:]
        try collect(top, in: layout, indexesAbove: 0, manifests: &manifests, blobs: &blobs)
        for blob in blobs.values where !layout.hasBlob(blob.digest) {
            throw BoxstackError(
                .notFound, "the image \(tag) in \(layout.path) is incomplete: blob \(blob.digest) is missing.")
        }
        let ordered = blobs.values.sorted { $0.digest < $1.digest }
        let bar = ProgressBar(
            label: "Pushing \(reference)", total: ordered.reduce(0) { $0 + $1.size }, enabled: showProgress)
        let client = client
        let repository = reference.repository
        try await Self.forEach(ordered, parallelism: parallelism) { blob in
            try await client.uploadBlob(
                repository: repository, digest: blob.digest, size: blob.size, from: layout.blobPath(blob.digest),
                mountFrom: mountFrom, progress: { bar.advance(by: $0) })
        }
        if showProgress { bar.finish() }
        // Children before their index, so the registry never holds an index pointing at nothing.
        for manifest in manifests.dropLast() {
            try await client.putManifest(
                repository: repository, reference: manifest.digest.description,
                data: try verifiedBlob(manifest.digest, in: layout), mediaType: manifest.mediaType)
        }
        let data = try verifiedBlob(top.digest, in: layout)
        if let digest = reference.digest, digest != top.digest {
            throw BoxstackError(
                .invalidArgument, "\(reference) names digest \(digest), but the image \(tag) has digest \(top.digest).")
        }
        return try await client.putManifest(
            repository: repository, reference: reference.tag ?? top.digest.description, data: data,
            mediaType: top.mediaType)
    }

    /// Gathers the manifests under `descriptor`, which lies below `indexesAbove` indexes (children
    /// first, `descriptor` last), and their blobs.
    private func collect(
        _ descriptor: Descriptor, in layout: OCILayout, indexesAbove: Int, manifests: inout [Descriptor],
        blobs: inout [ContentDigest: Descriptor]
    ) throws {
        if MediaType.indexes.contains(descriptor.mediaType) {
            guard indexesAbove < ImageIndex.maximumNestingDepth else {
                throw ImageIndex.nestedTooDeep(descriptor.digest, in: layout.path)
            }
            let index = try layout.readJSON(ImageIndex.self, descriptor.digest)
            for child in index.manifests where MediaType.manifests.contains(child.mediaType) || MediaType.indexes.contains(child.mediaType) {
                try collect(child, in: layout, indexesAbove: indexesAbove + 1, manifests: &manifests, blobs: &blobs)
            }
        } else {
            let manifest = try layout.readJSON(Manifest.self, descriptor.digest)
            for blob in [manifest.config] + manifest.layers where !Self.isForeign(blob) {
                blobs[blob.digest] = blob
            }
        }
        manifests.append(descriptor)
    }

    private func verifiedBlob(_ digest: ContentDigest, in layout: OCILayout) throws -> Data {
        let data = try layout.readBlob(digest)
        guard ContentDigest.of(data) == digest else {
            throw BoxstackError(.checksumMismatch, "the blob \(digest) in \(layout.path) is corrupt (its content has another digest).")
        }
        return data
    }

    // MARK: Pull

    /// Pulls `reference` into `layout` under `tag` and returns the stored manifest's descriptor.
    ///
    /// An index is resolved to the image for `platform` (this machine's by default). Blobs the layout
    /// already has are not downloaded. The others are downloaded in parallel to temporary files in the
    /// layout and verified; only when all of them arrived intact are they moved into the store, then the
    /// manifest is stored, and the tag is written last. On any failure the temporary files are removed
    /// and the layout's tags are as before.
    @discardableResult
    public func pull(reference: ImageReference, into layout: OCILayout, tag: String, platform: Platform = hostPlatform)
        async throws -> Descriptor
    {
        try checkRegistry(reference)
        let repository = reference.repository
        let (data, mediaType, digest) = try await client.manifest(
            repository: repository, reference: reference.manifestReference, platform: platform)
        let manifest = try OCIJSON.decode(Manifest.self, from: data, what: "the manifest of \(reference)")
        guard manifest.schemaVersion == 2 else {
            throw BoxstackError(.unsupported, "\(reference) has a schema \(manifest.schemaVersion) manifest; only schema 2 is supported.")
        }
        var wanted: [ContentDigest: Descriptor] = [:]
        for blob in [manifest.config] + manifest.layers where !Self.isForeign(blob) && !layout.hasBlob(blob.digest) {
            wanted[blob.digest] = blob
        }
        let ordered = wanted.values.sorted { $0.digest < $1.digest }
        let bar = ProgressBar(
            label: "Pulling \(reference)", total: ordered.reduce(0) { $0 + $1.size }, enabled: showProgress)
        let downloaded = LockedBox<[ContentDigest: String]>([:])
        let client = client
        do {
            try await Self.forEach(ordered, parallelism: parallelism) { blob in
                let temporary = layout.temporaryBlobPath()
                try await client.downloadBlob(
                    repository: repository, digest: blob.digest, size: blob.size, to: temporary,
                    progress: { bar.advance(by: $0) })
                downloaded.withValue { $0[blob.digest] = temporary }
            }
            if showProgress { bar.finish() }
            for blob in ordered {
                guard let temporary = downloaded.value[blob.digest] else { continue }
                try layout.importBlob(fromFile: temporary, expectedDigest: blob.digest, verified: true)
                downloaded.withValue { $0[blob.digest] = nil }
            }
        } catch {
            for temporary in downloaded.value.values { unlink(temporary) }
            throw error
        }
        try layout.writeBlob(data)
        let descriptor = Descriptor(mediaType: mediaType, digest: digest, size: Int64(data.count))
        try layout.setTag(tag, to: descriptor)
        return descriptor
    }

    // MARK: Helpers

    private func checkRegistry(_ reference: ImageReference) throws {
        guard reference.registry == client.registry else {
            throw BoxstackError(
                .internalError, "the transfer for \(reference) was given a client for \(client.registry).")
        }
    }

    /// Foreign layers (Windows base layers) must not be pushed or fetched from the registry.
    private static func isForeign(_ blob: Descriptor) -> Bool {
        blob.mediaType == MediaType.dockerForeignLayerGzip
    }

    /// Runs `body` for every item, at most `parallelism` at once; the first error cancels the rest.
    static func forEach<Item: Sendable>(
        _ items: [Item], parallelism: Int, _ body: @escaping @Sendable (Item) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var pending = items.makeIterator()
            for _ in 0..<parallelism {
                guard let item = pending.next() else { break }
                group.addTask { try await body(item) }
            }
            while try await group.next() != nil {
                if let item = pending.next() { group.addTask { try await body(item) } }
            }
        }
    }
}
