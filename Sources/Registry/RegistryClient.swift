import AsyncHTTPClient
import BoxstackCore
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import OCI

#if canImport(Glibc)
    import Glibc
#endif

/// Counters of what a `RegistryClient` did, for logs and for tests that check nothing was re-sent.
public struct RegistryStatistics: Sendable, Equatable {
    /// HTTP requests sent to the registry (including its token endpoint).
    public var requests = 0
    /// Blobs whose bytes were uploaded.
    public var blobsUploaded = 0
    /// Blobs mounted from another repository of the same registry.
    public var blobsMounted = 0
    /// Blobs not uploaded because the registry already had them.
    public var blobsSkipped = 0
    /// Blob bytes sent.
    public var bytesUploaded: Int64 = 0
    /// Blob bytes received.
    public var bytesDownloaded: Int64 = 0
}

/// How `uploadBlob` got a blob into the repository.
public enum BlobUploadResult: Sendable, Equatable {
    /// The repository already had it (HEAD found it); nothing was sent.
    case alreadyPresent
    /// The registry linked it from the `mountFrom` repository; nothing was sent.
    case mounted
    /// Its bytes were uploaded.
    case uploaded
}

/// A client for one registry's OCI distribution API (`/v2/`), on AsyncHTTPClient.
///
/// Transport: registries on `localhost`, `127.x.x.x` or `[::1]` are reached over plain HTTP. Any other
/// registry uses HTTPS with certificate verification; with `tlsVerify: false` (like skopeo's
/// `--tls-verify=false`) it uses HTTPS without verification and falls back to plain HTTP when the
/// registry does not speak TLS at all.
///
/// Authentication follows the registry's `WWW-Authenticate` challenge on `/v2/`: Basic sends
/// `credentials` on every request; Bearer fetches a token from the challenge's realm (with the
/// credentials as Basic auth when there are any, anonymously otherwise) and caches it per scope.
/// `RegistryURLPolicy` decides which realms, upload locations and redirects are contacted, and which
/// of them get credentials: only the registry's own origin and its token realm do.
///
/// Every request runs under a `TransferWatchdog` with `timeouts`: a registry that stalls or trickles
/// is given up on with a `timeout` error.
///
/// One `HTTPClient` is shared by every request of this client. Call `shutdown()` when done, or use
/// `withClient(...)`, which does so.
public final class RegistryClient: Sendable {
    /// The registry's `host[:port]`.
    public let registry: String
    /// False allows unverified TLS and plain HTTP for non-loopback registries.
    public let tlsVerify: Bool
    /// Credentials sent for Basic auth or to the token endpoint; nil for anonymous access.
    public let credentials: RegistryCredentials?
    /// Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks of this size.
    public let uploadChunkSize: Int64
    /// How long requests may stall or take.
    public let timeouts: RegistryTimeouts

    public static let defaultUploadChunkSize: Int64 = 32 << 20
    static let maximumManifestSize = 4 << 20

    let http: HTTPClient
    let state = LockedBox(State())

    struct State: Sendable {
        var baseURL: String?
        var challenge: AuthChallenge?
        var tokens: [String: String] = [:]
        var statistics = RegistryStatistics()
    }

    /// A client for `registry` (`host[:port]`, e.g. `127.0.0.1:5000` or `docker.io`).
    public init(
        registry: String, tlsVerify: Bool = true, credentials: RegistryCredentials? = nil,
        uploadChunkSize: Int64 = RegistryClient.defaultUploadChunkSize, timeouts: RegistryTimeouts = RegistryTimeouts()
    ) {
        self.registry = registry
        self.tlsVerify = tlsVerify
        self.credentials = credentials
        self.uploadChunkSize = max(uploadChunkSize, 1)
        self.timeouts = timeouts
        // No read timeout: the watchdog around every request ends stalls, with a clearer error.
        var configuration = HTTPClient.Configuration(
            certificateVerification: tlsVerify ? .fullVerification : .none,
            timeout: .init(connect: .seconds(30)))
        configuration.httpVersion = .http1Only
        // Redirects are followed by `send`, which decides per hop whether credentials go along.
        configuration.redirectConfiguration = .disallow
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// A client for `reference`'s registry with credentials from the auth files of `environment`
    /// (see `RegistryCredentials.lookup`).
    public convenience init(
        for reference: ImageReference, tlsVerify: Bool = true, timeouts: RegistryTimeouts = RegistryTimeouts(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        let credentials = try RegistryCredentials.lookup(
            registry: reference.registry, repository: reference.repository, environment: environment)
        self.init(registry: reference.registry, tlsVerify: tlsVerify, credentials: credentials, timeouts: timeouts)
    }

    /// Runs `body` with a new client and shuts the client down afterwards, also when `body` throws.
    public static func withClient<Result: Sendable>(
        registry: String, tlsVerify: Bool = true, credentials: RegistryCredentials? = nil,
        uploadChunkSize: Int64 = RegistryClient.defaultUploadChunkSize, timeouts: RegistryTimeouts = RegistryTimeouts(),
        _ body: (RegistryClient) async throws -> Result
    ) async throws -> Result {
        let client = RegistryClient(
            registry: registry, tlsVerify: tlsVerify, credentials: credentials, uploadChunkSize: uploadChunkSize,
            timeouts: timeouts)
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Closes the client's connections. Must be called once before the client is released.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// What this client has done so far.
    public var statistics: RegistryStatistics { state.value.statistics }

    /// The registry's API host: Docker Hub's API lives on `registry-1.docker.io`.
    var apiHost: String { registry == ImageReference.dockerHub ? "registry-1.docker.io" : registry }

    // MARK: Manifests

    /// Fetches the manifest `reference` (a tag or a digest) of `repository`.
    ///
    /// Accepts OCI and Docker v2 manifests and indexes. With `platform`, an index (or Docker manifest
    /// list) is resolved to the entry for that OS and architecture, and that manifest is returned;
    /// indexes nested deeper than `ImageIndex.maximumNestingDepth` are an `invalidData` error.
    /// The returned digest is computed from the bytes; a digest `reference` or a `Docker-Content-Digest`
    /// header that disagrees throws `checksumMismatch`.
    public func manifest(
        repository: String, reference: String, platform: Platform? = nil
    ) async throws -> (data: Data, mediaType: String, digest: ContentDigest) {
        try await manifest(repository: repository, reference: reference, platform: platform, indexesAbove: 0)
    }

    /// `manifest(repository:reference:platform:)` for a document below `indexesAbove` indexes.
    private func manifest(
        repository: String, reference: String, platform: Platform?, indexesAbove: Int
    ) async throws -> (data: Data, mediaType: String, digest: ContentDigest) {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: MediaType.acceptedManifests.joined(separator: ", "))
        let response = try await request(
            .GET, "/v2/\(repository)/manifests/\(reference)", scope: Self.pullScope(repository), headers: headers,
            limit: Self.maximumManifestSize, activity: "fetching the manifest \(repository):\(reference)")
        guard response.status == .ok else {
            throw failure(response.status, body: response.body, what: "the manifest \(repository):\(reference)")
        }
        let body = response.body
        let digest = ContentDigest.of(body)
        if let expected = ContentDigest(reference), expected != digest {
            throw BoxstackError(
                .checksumMismatch,
                "the manifest \(registry)/\(repository)@\(expected) the registry sent has digest \(digest); it is corrupt.")
        }
        if let header = response.headers.first(name: "Docker-Content-Digest"), let announced = ContentDigest(header),
            announced != digest
        {
            throw BoxstackError(
                .checksumMismatch,
                "the manifest \(registry)/\(repository):\(reference) has digest \(digest) but the registry announced \(announced); it is corrupt.")
        }
        let mediaType = Self.mediaType(of: body, contentType: response.headers.first(name: "Content-Type"))
        guard MediaType.manifests.contains(mediaType) || MediaType.indexes.contains(mediaType) else {
            throw BoxstackError(
                .unsupported,
                "\(registry)/\(repository):\(reference) has a manifest of type \(Terminal.quoted(mediaType)); only OCI and Docker v2 schema 2 images are supported."
            )
        }
        guard let platform, MediaType.indexes.contains(mediaType) else { return (body, mediaType, digest) }
        guard indexesAbove < ImageIndex.maximumNestingDepth else {
            throw ImageIndex.nestedTooDeep(digest, in: "\(registry)/\(repository)")
        }
        let index = try OCIJSON.decode(ImageIndex.self, from: body, what: "the index \(registry)/\(repository):\(reference)")
        let matching = index.manifests.first { entry in
            guard let candidate = entry.platform else { return false }
            return candidate.os == platform.os && candidate.architecture == platform.architecture
                && (platform.variant == nil || candidate.variant == platform.variant)
        }
        guard let matching else {
            let available = index.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
            let listed = available.isEmpty ? "no platform entries" : Terminal.sanitized(available.joined(separator: ", "))
            throw BoxstackError(
                .notFound,
                "\(registry)/\(repository):\(reference) has no image for \(platform.os)/\(platform.architecture); it has \(listed).")
        }
        return try await manifest(
            repository: repository, reference: matching.digest.description, platform: platform, indexesAbove: indexesAbove + 1)
    }

    /// Uploads a manifest as `reference` (a tag, or its digest) and returns its digest.
    @discardableResult
    public func putManifest(repository: String, reference: String, data: Data, mediaType: String) async throws
        -> ContentDigest
    {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: mediaType)
        let response = try await request(
            .PUT, "/v2/\(repository)/manifests/\(reference)", scope: Self.pushScope(repository), headers: headers,
            activity: "uploading the manifest \(repository):\(reference)", body: { _ in .bytes(ByteBuffer(bytes: data)) })
        guard response.status == .created else {
            throw failure(response.status, body: response.body, what: "uploading the manifest \(repository):\(reference)")
        }
        let digest = ContentDigest.of(data)
        if let header = response.headers.first(name: "Docker-Content-Digest"), let stored = ContentDigest(header),
            stored != digest
        {
            throw BoxstackError(
                .checksumMismatch,
                "the registry stored the manifest \(repository):\(reference) as \(stored), but its digest is \(digest).")
        }
        return digest
    }

    // MARK: Helpers

    static func pullScope(_ repository: String) -> String { "repository:\(repository):pull" }
    static func pushScope(_ repository: String) -> String { "repository:\(repository):pull,push" }

    static func queryEscaped(_ text: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+:/?")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// The manifest's media type: its `mediaType` field, else the `Content-Type` without parameters.
    static func mediaType(of manifest: Data, contentType: String?) -> String {
        struct Probe: Decodable {
            var mediaType: String?
            var schemaVersion: Int?
            var manifests: [Descriptor]?
        }
        let probe = try? JSONDecoder().decode(Probe.self, from: manifest)
        if let mediaType = probe?.mediaType, !mediaType.isEmpty { return mediaType }
        let header = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) }
        if let header, !header.isEmpty, header != "application/json", header != "application/octet-stream" {
            return header
        }
        // OCI allows omitting mediaType; an index is recognised by its manifests list.
        return probe?.manifests != nil ? MediaType.imageIndex : MediaType.imageManifest
    }

}
