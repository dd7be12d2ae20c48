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

    // MARK: Blobs

    /// True when `repository` has the blob `digest` (HEAD).
    public func blobExists(repository: String, digest: ContentDigest) async throws -> Bool {
        try await blobExists(repository: repository, digest: digest, scope: Self.pullScope(repository))
    }

    private func blobExists(repository: String, digest: ContentDigest, scope: String) async throws -> Bool {
        let response = try await request(
            .HEAD, "/v2/\(repository)/blobs/\(digest)", scope: scope, activity: "checking for the blob \(digest) in \(repository)")
        switch response.status {
        case .ok: return true
        case .notFound: return false
        default: throw failure(response.status, body: Data(), what: "checking the blob \(digest) in \(repository)")
        }
    }

    /// Downloads the blob `digest` of `repository` to `path`.
    ///
    /// The bytes stream into a temporary file beside `path` while being hashed. Only when digest and
    /// size (`size`, when given) match is the file renamed to `path`; otherwise it is removed,
    /// `checksumMismatch` names the digest, and nothing is left at `path`. `progress` receives byte counts
    /// as they arrive. A redirect (e.g. to a storage host) is followed, without credentials when it
    /// leaves the registry's origin.
    public func downloadBlob(
        repository: String, digest: ContentDigest, size: Int64? = nil, to path: String,
        progress: (@Sendable (Int64) -> Void)? = nil
    ) async throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(directory.isEmpty ? "." : directory)/.\((path as NSString).lastPathComponent).\(UUID().uuidString).download"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw BoxstackError(.permission, "cannot create \(temporary): \(String(cString: strerror(errno))).")
        }
        var keep = false
        defer {
            close(descriptor)
            if !keep { unlink(temporary) }
        }
        let activity = "downloading the blob \(digest) of \(repository)"
        let (received, actual) = try await send(
            .GET, "/v2/\(repository)/blobs/\(digest)", scope: Self.pullScope(repository), blob: true, activity: activity
        ) { response, transfer in
            guard response.status == .ok else {
                let body = try await self.collect(response, limit: 1 << 20, transfer: transfer, activity: activity)
                throw self.failure(response.status, body: body, what: "the blob \(digest) of \(repository)")
            }
            var hasher = SHA256()
            var received: Int64 = 0
            do {
                for try await buffer in response.body {
                    transfer.record(bytes: buffer.readableBytes)
                    received += Int64(buffer.readableBytes)
                    if let size, received > size {
                        throw BoxstackError(
                            .checksumMismatch,
                            "the blob \(digest) from \(self.registry)/\(repository) is larger than its \(size) bytes; it is corrupt and was not stored."
                        )
                    }
                    try buffer.withUnsafeReadableBytes { bytes in
                        hasher.update(bufferPointer: bytes)
                        try Self.writeAll(bytes, to: descriptor, path: temporary)
                    }
                    progress?(Int64(buffer.readableBytes))
                }
            } catch let error as BoxstackError {
                throw error
            } catch {
                throw BoxstackError(
                    .network, "the download of blob \(digest) from \(self.registry)/\(repository) broke off after \(received) bytes.",
                    cause: error)
            }
            return (received, ContentDigest(sha256Hex: hasher.finalize().hexString))
        }
        state.withValue { $0.statistics.bytesDownloaded += received }
        guard actual == digest else {
            throw BoxstackError(
                .checksumMismatch,
                "the blob \(digest) from \(registry)/\(repository) is corrupt: its \(received) bytes have digest \(actual); nothing was stored.")
        }
        if let size, received != size {
            throw BoxstackError(
                .checksumMismatch,
                "the blob \(digest) from \(registry)/\(repository) has \(received) bytes instead of \(size); nothing was stored.")
        }
        guard rename(temporary, path) == 0 else {
            throw BoxstackError(.permission, "cannot move \(temporary) to \(path): \(String(cString: strerror(errno))).")
        }
        keep = true
    }

    /// Puts the blob in the file at `path` (of `size` bytes with `digest`) into `repository`.
    ///
    /// Nothing is sent when the repository already has it. With `mountFrom`, a repository of the same
    /// registry that has the blob, the registry is asked to link it from there. Otherwise blobs up to
    /// `uploadChunkSize` go up in one PUT, larger ones in PATCH chunks. The registry checks the digest.
    ///
    /// The registry may hand out an upload session on another host (a storage service, often with a
    /// pre-signed URL). Like docker and containerd, the client sends that session its PATCH and PUT
    /// requests without the registry's credentials: they belong to the registry alone, and such URLs
    /// carry their own authorization.
    @discardableResult
    public func uploadBlob(
        repository: String, digest: ContentDigest, size: Int64, from path: String, mountFrom: String? = nil,
        progress: (@Sendable (Int64) -> Void)? = nil
    ) async throws -> BlobUploadResult {
        var scope = Self.pushScope(repository)
        if let mountFrom, mountFrom != repository { scope += " " + Self.pullScope(mountFrom) }
        if try await blobExists(repository: repository, digest: digest, scope: scope) {
            state.withValue { $0.statistics.blobsSkipped += 1 }
            progress?(size)
            return .alreadyPresent
        }
        var start = "/v2/\(repository)/blobs/uploads/"
        if let mountFrom, mountFrom != repository {
            start += "?mount=\(Self.queryEscaped(digest.description))&from=\(Self.queryEscaped(mountFrom))"
        }
        let activity = "uploading the blob \(digest) to \(repository)"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        let started = try await request(
            .POST, start, scope: scope, headers: headers, activity: "starting the upload of blob \(digest) to \(repository)")
        if started.status == .created {
            state.withValue { $0.statistics.blobsMounted += 1 }
            progress?(size)
            return .mounted
        }
        guard started.status == .accepted else {
            throw failure(started.status, body: started.body, what: "starting the upload of blob \(digest) to \(repository)")
        }
        var location = try await uploadLocation(started.headers, relativeTo: try await baseURL() + start, activity: activity)
        do {
            if size <= uploadChunkSize {
                location = try await finishUpload(
                    location: location, digest: digest, scope: scope, path: path, range: 0..<size, activity: activity,
                    progress: progress)
            } else {
                var offset: Int64 = 0
                while offset < size {
                    let end = min(offset + uploadChunkSize, size)
                    var chunkHeaders = HTTPHeaders()
                    chunkHeaders.add(name: "Content-Type", value: "application/octet-stream")
                    chunkHeaders.add(name: "Content-Length", value: String(end - offset))
                    chunkHeaders.add(name: "Content-Range", value: "\(offset)-\(end - 1)")
                    let range = offset..<end
                    let response = try await request(
                        .PATCH, location, scope: scope, headers: chunkHeaders, blob: true, activity: activity,
                        body: { transfer in Self.fileBody(path: path, range: range, transfer: transfer, progress: progress) })
                    guard response.status == .accepted else {
                        throw failure(response.status, body: response.body, what: "uploading a chunk of blob \(digest) to \(repository)")
                    }
                    location = try await uploadLocation(response.headers, relativeTo: location, activity: activity)
                    state.withValue { $0.statistics.bytesUploaded += Int64(range.count) }
                    offset = end
                }
                location = try await finishUpload(
                    location: location, digest: digest, scope: scope, path: path, range: size..<size, activity: activity,
                    progress: nil)
            }
        } catch {
            // Abandon the upload session so the registry does not keep the partial data around.
            _ = try? await request(.DELETE, location, scope: scope, activity: "cancelling the upload of blob \(digest)")
            throw error
        }
        state.withValue { $0.statistics.blobsUploaded += 1 }
        return .uploaded
    }

    /// The closing PUT of an upload session, carrying the bytes of `range` (empty after chunks).
    private func finishUpload(
        location: String, digest: ContentDigest, scope: String, path: String, range: Range<Int64>, activity: String,
        progress: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        let url = location + (location.contains("?") ? "&" : "?") + "digest=" + Self.queryEscaped(digest.description)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/octet-stream")
        headers.add(name: "Content-Length", value: String(range.count))
        let response = try await request(
            .PUT, url, scope: scope, headers: headers, blob: true, activity: activity,
            body: { transfer in
                range.isEmpty ? .bytes(ByteBuffer()) : Self.fileBody(path: path, range: range, transfer: transfer, progress: progress)
            })
        guard response.status == .created else {
            throw failure(response.status, body: response.body, what: "completing the upload of blob \(digest)")
        }
        state.withValue { $0.statistics.bytesUploaded += Int64(range.count) }
        return location
    }

    /// `range` of the file at `path` as a streamed request body, reported to `transfer` and `progress`.
    private static func fileBody(
        path: String, range: Range<Int64>, transfer: TransferProgress, progress: (@Sendable (Int64) -> Void)?
    ) -> HTTPClientRequest.Body {
        let chunks = FileChunks(path: path, range: range) { count in
            transfer.record(bytes: Int(count))
            progress?(count)
        }
        return .stream(chunks, length: .known(Int64(range.count)))
    }

    /// The upload session's URL from a `Location` header (absolute, or relative to `current`), once
    /// the URL policy allows it.
    private func uploadLocation(_ headers: HTTPHeaders, relativeTo current: String, activity: String) async throws -> String {
        guard let location = headers.first(name: "Location") else {
            throw BoxstackError(.invalidData, "the registry \(registry) started an upload without a Location header.")
        }
        return try urlPolicy(base: try await baseURL()).followedURL(location, relativeTo: current, activity: activity)
    }

    // MARK: Helpers

    static func pullScope(_ repository: String) -> String { "repository:\(repository):pull" }
    static func pushScope(_ repository: String) -> String { "repository:\(repository):pull,push" }

    private static func queryEscaped(_ text: String) -> String {
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

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw BoxstackError(.permission, "cannot write \(path): \(String(cString: strerror(errno))).")
            }
            offset += written
        }
    }
}
