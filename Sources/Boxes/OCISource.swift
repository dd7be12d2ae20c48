import BoxstackCore
import Foundation
import OCI
import Registry

/// An OCI artifact in a registry whose layers are the box files, each named by its
/// `org.opencontainers.image.title` annotation; the digests come from the manifest, so an update check
/// is one manifest request.
struct OCISource: PublishedFileSource {
    let client: RegistryClient
    let repository: String
    let reference: String

    private var name: String { "oci://\(client.registry)/\(repository):\(reference)" }

    func describe(_ files: [(role: BoxFileRole, name: String)]) async throws -> [PublishedFile] {
        let manifestData = try await client.manifest(repository: repository, reference: reference).data
        let manifest = try OCIJSON.decode(Manifest.self, from: manifestData, what: "the manifest of \(name)")
        return try files.map { role, fileName in
            guard let layer = manifest.layers.first(where: { $0.annotations?[AnnotationKey.title] == fileName }) else {
                throw BoxstackError(
                    .notFound, "\(name) has no layer titled \(fileName) (annotation \(AnnotationKey.title)); republish the box artifact with it.")
            }
            return PublishedFile(
                role: role, name: fileName, location: "oci://\(client.registry)/\(repository)@\(layer.digest)",
                digest: layer.digest, checksumText: nil, size: layer.size)
        }
    }

    func download(_ file: PublishedFile, into part: PartialDownload, progress: DownloadProgress) async throws {
        // The registry client verifies digest and size itself and renames the blob onto the part.
        let bar = progress.bar(total: file.size)
        defer { bar.finish() }
        do {
            try await client.downloadBlob(
                repository: repository, digest: file.digest, size: file.size, to: part.partPath,
                progress: { bar.advance(by: $0) })
        } catch {
            // Blobs arrive whole or not at all, so the empty part is not worth keeping for a resume.
            part.discard()
            guard let failure = error as? BoxstackError, failure.code == .checksumMismatch else { throw error }
            throw BoxstackError(
                .checksumMismatch,
                "\(file.name) from \(name) does not match the digest \(file.digest) its manifest names; the cached box was left unchanged, and the artifact needs to be republished.",
                cause: failure)
        }
        try part.adoptVerifiedFile()
    }
}
