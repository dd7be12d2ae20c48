import BoxstackCore
import Foundation
import OCI
import Registry

/// A box as an OCI artifact (image-spec 1.1 guidance): an empty config, one layer per box file titled
/// with its file name, and the box's name and architecture in the description. `OCISource` fetches it.
/// The manifest holds nothing but the files, so pushing the same box again gives the same digest.
public enum BoxArtifact {
    public static let artifactType = "application/vnd.boxstack.box.v1"

    /// The media type of the layer that carries a file of `role`.
    static func layerMediaType(_ role: BoxFileRole) -> String {
        switch role {
        case .kernel: "application/vnd.boxstack.box.kernel.v1"
        case .initrd: "application/vnd.boxstack.box.initrd.v1"
        case .disk: "application/vnd.boxstack.box.disk.v1.qcow2"
        }
    }

    /// The OCI empty descriptor's content (`{}`), the config of every artifact.
    static let emptyConfig = Data("{}".utf8)

    /// One box file to publish.
    public struct File: Sendable {
        public var role: BoxFileRole
        public var path: String
        public var digest: ContentDigest
        public var size: Int64

        public init(role: BoxFileRole, path: String, digest: ContentDigest, size: Int64) {
            self.role = role
            self.path = path
            self.digest = digest
            self.size = size
        }

        /// The name the catalog gives the file, which titles its layer.
        public var name: String { (path as NSString).lastPathComponent }
    }

    /// What a push did.
    public struct PushResult: Sendable, Encodable {
        public var reference: String
        public var digest: ContentDigest
        /// Bytes sent to the registry (files it already had are skipped).
        public var uploadedBytes: Int64
        public var skippedFiles: [String]
    }

    /// The files of a verified cached box, with the digests the cache verified.
    public static func files(of box: CachedBox) throws -> [File] {
        let paths = [(BoxFileRole.kernel, box.kernel), (.initrd, box.initrd), (.disk, box.disk)]
        guard box.fileDigests.count == paths.count else {
            throw BoxstackError(.internalError, "the cached box \(box.name) (\(box.arch)) lacks a digest of one of its files.")
        }
        return try zip(paths, box.fileDigests).map { entry, digest in
            var info = stat()
            guard stat(entry.1, &info) == 0 else {
                throw BoxstackError(.notFound, "\(entry.1) is gone; run boxstack boxes fetch \(box.name) --arch \(box.arch).")
            }
            return File(role: entry.0, path: entry.1, digest: digest, size: Int64(info.st_size))
        }
    }

    /// The artifact manifest for `files` of the box `name` on `arch`.
    public static func manifest(name: String, arch: String, files: [File]) -> Manifest {
        let config = Descriptor(mediaType: MediaType.emptyJSON, digest: ContentDigest.of(emptyConfig), size: Int64(emptyConfig.count))
        // Kernel, initrd, disk: one order, so the same box always makes the same manifest.
        let ordered = files.sorted { BoxFileRole.allCases.firstIndex(of: $0.role)! < BoxFileRole.allCases.firstIndex(of: $1.role)! }
        let layers = ordered.map { file in
            Descriptor(
                mediaType: layerMediaType(file.role), digest: file.digest, size: file.size,
                annotations: [AnnotationKey.title: file.name])
        }
        var manifest = Manifest(
            config: config, layers: layers, annotations: [AnnotationKey.description: "boxstack box \(name) (\(arch))"])
        manifest.artifactType = artifactType
        return manifest
    }

    /// Pushes `files` as the artifact `repository:tag`: files the repository has are skipped, the registry
    /// checks each upload's digest, and the manifest goes last, so the tag never names missing blobs.
    public static func push(
        name: String, arch: String, files: [File], client: any RegistryAccess, repository: String, tag: String,
        showProgress: Bool = ProgressBar.isTerminal
    ) async throws -> PushResult {
        let configFile = FileManager.default.temporaryDirectory.appendingPathComponent("boxstack-empty-config-\(UUID().uuidString)").path
        try emptyConfig.write(to: URL(fileURLWithPath: configFile))
        defer { unlink(configFile) }
        _ = try await client.uploadBlob(
            repository: repository, digest: ContentDigest.of(emptyConfig), size: Int64(emptyConfig.count), from: configFile,
            mountFrom: nil, progress: nil)

        let reference = "\(client.registry)/\(repository):\(tag)"
        let bar = ProgressBar(label: "Pushing \(name) (\(arch)) to \(reference)", total: files.reduce(0) { $0 + $1.size }, enabled: showProgress)
        var uploadedBytes: Int64 = 0
        var skipped: [String] = []
        for file in files {
            let result = try await client.uploadBlob(
                repository: repository, digest: file.digest, size: file.size, from: file.path, mountFrom: nil,
                progress: { bar.advance(by: $0) })
            if result == .uploaded { uploadedBytes += file.size } else { skipped.append(file.name) }
        }
        bar.finish()
        let data = try OCIJSON.encode(manifest(name: name, arch: arch, files: files))
        let digest = try await client.putManifest(
            repository: repository, reference: tag, data: data, mediaType: MediaType.imageManifest)
        return PushResult(reference: reference, digest: digest, uploadedBytes: uploadedBytes, skippedFiles: skipped)
    }
}
