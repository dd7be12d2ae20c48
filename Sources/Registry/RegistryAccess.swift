import BoxstackCore
import Foundation
import OCI

/// What transfers ask of one registry: manifests and blobs, by repository. `RegistryClient` (the OCI
/// distribution API over HTTP) is the one that ships; Tests/RegistryTests drives `ImageTransfer`
/// against an in-memory fake as well as against real registries.
public protocol RegistryAccess: Sendable {
    /// The registry's `host[:port]`.
    var registry: String { get }
    /// The manifest `reference` (tag or digest) of `repository`, resolved for `platform` when it is an index.
    func manifest(repository: String, reference: String, platform: Platform?) async throws -> (
        data: Data, mediaType: String, digest: ContentDigest
    )
    /// Stores a manifest under `reference`; returns its digest.
    @discardableResult
    func putManifest(repository: String, reference: String, data: Data, mediaType: String) async throws -> ContentDigest
    /// Downloads a blob to `path`, verifying its digest; nothing is left at `path` on failure.
    func downloadBlob(
        repository: String, digest: ContentDigest, size: Int64?, to path: String, progress: (@Sendable (Int64) -> Void)?
    ) async throws
    /// Puts a blob into `repository` unless it is there (or can be mounted from `mountFrom`).
    @discardableResult
    func uploadBlob(
        repository: String, digest: ContentDigest, size: Int64, from path: String, mountFrom: String?,
        progress: (@Sendable (Int64) -> Void)?
    ) async throws -> BlobUploadResult
}

extension RegistryClient: RegistryAccess {}
