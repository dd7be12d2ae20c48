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

    public static let defaultUploadChunkSize: Int64 = 32 << 20
    static let maximumManifestSize = 4 << 20

    private let http: HTTPClient
    private let state = LockedBox(State())

    private struct State: Sendable {
        var baseURL: String?
        var challenge: AuthChallenge?
        var tokens: [String: String] = [:]
        var statistics = RegistryStatistics()
    }

    /// A client for `registry` (`host[:port]`, e.g. `127.0.0.1:5000` or `docker.io`).
    public init(
        registry: String, tlsVerify: Bool = true, credentials: RegistryCredentials? = nil,
        uploadChunkSize: Int64 = RegistryClient.defaultUploadChunkSize
    ) {
        self.registry = registry
        self.tlsVerify = tlsVerify
        self.credentials = credentials
        self.uploadChunkSize = max(uploadChunkSize, 1)
        var configuration = HTTPClient.Configuration(
            certificateVerification: tlsVerify ? .fullVerification : .none,
            timeout: .init(connect: .seconds(30), read: .seconds(300)))
        configuration.httpVersion = .http1Only
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// A client for `reference`'s registry with credentials from the auth files of `environment`
    /// (see `RegistryCredentials.lookup`).
    public convenience init(
        for reference: ImageReference, tlsVerify: Bool = true,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        let credentials = try RegistryCredentials.lookup(
            registry: reference.registry, repository: reference.repository, environment: environment)
        self.init(registry: reference.registry, tlsVerify: tlsVerify, credentials: credentials)
    }

    /// Runs `body` with a new client and shuts the client down afterwards, also when `body` throws.
    public static func withClient<Result: Sendable>(
        registry: String, tlsVerify: Bool = true, credentials: RegistryCredentials? = nil,
        uploadChunkSize: Int64 = RegistryClient.defaultUploadChunkSize,
        _ body: (RegistryClient) async throws -> Result
    ) async throws -> Result {
        let client = RegistryClient(
            registry: registry, tlsVerify: tlsVerify, credentials: credentials, uploadChunkSize: uploadChunkSize)
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
    private var apiHost: String { registry == ImageReference.dockerHub ? "registry-1.docker.io" : registry }

    // MARK: Manifests

    /// Fetches the manifest `reference` (a tag or a digest) of `repository`.
    ///
    /// Accepts OCI and Docker v2 manifests and indexes. With `platform`, an index (or Docker manifest
    /// list) is resolved to the entry for that OS and architecture, and that manifest is returned.
    /// The returned digest is computed from the bytes; a digest `reference` or a `Docker-Content-Digest`
    /// header that disagrees throws `checksumMismatch`.
    public func manifest(
        repository: String, reference: String, platform: Platform? = nil
    ) async throws -> (data: Data, mediaType: String, digest: ContentDigest) {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: MediaType.acceptedManifests.joined(separator: ", "))
        let response = try await send(
            .GET, "/v2/\(repository)/manifests/\(reference)", scope: Self.pullScope(repository), headers: headers)
        let body = try await collect(response, limit: Self.maximumManifestSize, what: "manifest \(repository):\(reference)")
        guard response.status == .ok else {
            throw failure(response.status, body: body, what: "the manifest \(repository):\(reference)")
        }
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
                "\(registry)/\(repository):\(reference) has a manifest of type \(mediaType); only OCI and Docker v2 schema 2 images are supported.")
        }
        guard let platform, MediaType.indexes.contains(mediaType) else { return (body, mediaType, digest) }
        let index = try OCIJSON.decode(ImageIndex.self, from: body, what: "the index \(registry)/\(repository):\(reference)")
        let matching = index.manifests.first { entry in
            guard let candidate = entry.platform else { return false }
            return candidate.os == platform.os && candidate.architecture == platform.architecture
                && (platform.variant == nil || candidate.variant == platform.variant)
        }
        guard let matching else {
            let available = index.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
            throw BoxstackError(
                .notFound,
                "\(registry)/\(repository):\(reference) has no image for \(platform.os)/\(platform.architecture); it has \(available.isEmpty ? "no platform entries" : available.joined(separator: ", ")).")
        }
        return try await manifest(repository: repository, reference: matching.digest.description, platform: platform)
    }

    /// Uploads a manifest as `reference` (a tag, or its digest) and returns its digest.
    @discardableResult
    public func putManifest(repository: String, reference: String, data: Data, mediaType: String) async throws
        -> ContentDigest
    {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: mediaType)
        let response = try await send(
            .PUT, "/v2/\(repository)/manifests/\(reference)", scope: Self.pushScope(repository), headers: headers,
            body: { .bytes(ByteBuffer(bytes: data)) })
        let body = try await collect(response, limit: 1 << 20, what: "manifest upload")
        guard response.status == .created else {
            throw failure(response.status, body: body, what: "uploading the manifest \(repository):\(reference)")
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
        let response = try await send(.HEAD, "/v2/\(repository)/blobs/\(digest)", scope: scope)
        _ = try await collect(response, limit: 1 << 20, what: "blob check")
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
    /// as they arrive.
    public func downloadBlob(
        repository: String, digest: ContentDigest, size: Int64? = nil, to path: String,
        progress: (@Sendable (Int64) -> Void)? = nil
    ) async throws {
        let response = try await send(
            .GET, "/v2/\(repository)/blobs/\(digest)", scope: Self.pullScope(repository), timeout: .hours(24))
        guard response.status == .ok else {
            let body = try await collect(response, limit: 1 << 20, what: "blob download")
            throw failure(response.status, body: body, what: "the blob \(digest) of \(repository)")
        }
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
        var hasher = SHA256()
        var received: Int64 = 0
        do {
            for try await buffer in response.body {
                received += Int64(buffer.readableBytes)
                if let size, received > size {
                    throw BoxstackError(
                        .checksumMismatch,
                        "the blob \(digest) from \(registry)/\(repository) is larger than its \(size) bytes; it is corrupt and was not stored.")
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
                .network, "the download of blob \(digest) from \(registry)/\(repository) broke off after \(received) bytes.",
                cause: error)
        }
        state.withValue { $0.statistics.bytesDownloaded += received }
        let actual = ContentDigest(sha256Hex: hasher.finalize().hexString)
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
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        let started = try await send(.POST, start, scope: scope, headers: headers)
        let startBody = try await collect(started, limit: 1 << 20, what: "upload start")
        if started.status == .created {
            state.withValue { $0.statistics.blobsMounted += 1 }
            progress?(size)
            return .mounted
        }
        guard started.status == .accepted else {
            throw failure(started.status, body: startBody, what: "starting the upload of blob \(digest) to \(repository)")
        }
        var location = try uploadLocation(started, base: start)
        do {
            if size <= uploadChunkSize {
                location = try await finishUpload(
                    location: location, digest: digest, scope: scope, path: path, range: 0..<size, progress: progress)
            } else {
                var offset: Int64 = 0
                while offset < size {
                    let end = min(offset + uploadChunkSize, size)
                    var chunkHeaders = HTTPHeaders()
                    chunkHeaders.add(name: "Content-Type", value: "application/octet-stream")
                    chunkHeaders.add(name: "Content-Length", value: String(end - offset))
                    chunkHeaders.add(name: "Content-Range", value: "\(offset)-\(end - 1)")
                    let range = offset..<end
                    let response = try await send(
                        .PATCH, location, scope: scope, headers: chunkHeaders, timeout: .hours(24),
                        body: { .stream(FileChunks(path: path, range: range, progress: progress), length: .known(Int64(range.count))) })
                    let body = try await collect(response, limit: 1 << 20, what: "upload chunk")
                    guard response.status == .accepted else {
                        throw failure(response.status, body: body, what: "uploading a chunk of blob \(digest) to \(repository)")
                    }
                    location = try uploadLocation(response, base: location)
                    state.withValue { $0.statistics.bytesUploaded += Int64(range.count) }
                    offset = end
                }
                location = try await finishUpload(
                    location: location, digest: digest, scope: scope, path: path, range: size..<size, progress: nil)
            }
        } catch {
            // Abandon the upload session so the registry does not keep the partial data around.
            if let response = try? await send(.DELETE, location, scope: scope) {
                _ = try? await collect(response, limit: 1 << 20, what: "upload cancel")
            }
            throw error
        }
        state.withValue { $0.statistics.blobsUploaded += 1 }
        return .uploaded
    }

    /// The closing PUT of an upload session, carrying the bytes of `range` (empty after chunks).
    private func finishUpload(
        location: String, digest: ContentDigest, scope: String, path: String, range: Range<Int64>,
        progress: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        let url = location + (location.contains("?") ? "&" : "?") + "digest=" + Self.queryEscaped(digest.description)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/octet-stream")
        headers.add(name: "Content-Length", value: String(range.count))
        let response = try await send(
            .PUT, url, scope: scope, headers: headers, timeout: .hours(24),
            body: {
                range.isEmpty
                    ? .bytes(ByteBuffer()) : .stream(FileChunks(path: path, range: range, progress: progress), length: .known(Int64(range.count)))
            })
        let body = try await collect(response, limit: 1 << 20, what: "upload completion")
        guard response.status == .created else {
            throw failure(response.status, body: body, what: "completing the upload of blob \(digest)")
        }
        state.withValue { $0.statistics.bytesUploaded += Int64(range.count) }
        return location
    }

    /// The session URL from a `Location` header, which may be absolute or relative to the registry.
    private func uploadLocation(_ response: HTTPClientResponse, base: String) throws -> String {
        guard let location = response.headers.first(name: "Location") else {
            throw BoxstackError(.invalidData, "the registry \(registry) started an upload without a Location header.")
        }
        if location.hasPrefix("http://") || location.hasPrefix("https://") || location.hasPrefix("/") { return location }
        let absoluteBase = base.hasPrefix("/") ? (state.value.baseURL ?? "") + base : base
        guard let resolved = URL(string: location, relativeTo: URL(string: absoluteBase))?.absoluteString else {
            throw BoxstackError(.invalidData, "the registry \(registry) sent an invalid upload Location \(location).")
        }
        return resolved
    }

    // MARK: Requests and authentication

    /// Sends one request, authorizing it for `scope` and retrying once after a 401 with a fresh challenge.
    ///
    /// `target` is a path (`/v2/...`) or an absolute URL from a `Location` header. `body` is called per
    /// attempt so a streamed body can be sent again.
    private func send(
        _ method: HTTPMethod, _ target: String, scope: String, headers: HTTPHeaders = [:],
        timeout: TimeAmount = .seconds(120), body: () throws -> HTTPClientRequest.Body? = { nil }
    ) async throws -> HTTPClientResponse {
        let base = try await baseURL()
        let url = target.hasPrefix("/") ? base + target : target
        for attempt in 0..<2 {
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers = headers
            if let authorization = try await authorization(scope: scope, refresh: attempt > 0) {
                request.headers.replaceOrAdd(name: "Authorization", value: authorization)
            }
            request.body = try body()
            let response = try await execute(request, timeout: timeout)
            guard response.status == .unauthorized else { return response }
            _ = try? await collect(response, limit: 1 << 20, what: "authentication challenge")
            let header = response.headers.first(name: "WWW-Authenticate")
            if let header, let challenge = AuthChallenge(header: header) {
                state.withValue { $0.challenge = challenge }
            }
            if attempt == 1 || header == nil { break }
            if case .basic = state.value.challenge, credentials == nil { break }
        }
        throw authenticationFailure(scope: scope)
    }

    private func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        state.withValue { $0.statistics.requests += 1 }
        do {
            return try await http.execute(request, timeout: timeout)
        } catch let error as BoxstackError {
            throw error
        } catch {
            throw BoxstackError(
                .network, "\(request.method) \(request.url) failed: the registry \(registry) did not answer.", cause: error)
        }
    }

    /// The `scheme://host` that answers `/v2/`, found once; also learns the authentication challenge.
    private func baseURL() async throws -> String {
        if let base = state.value.baseURL { return base }
        let schemes =
            ImageReference.isLoopbackRegistry(registry) ? ["http"] : tlsVerify ? ["https"] : ["https", "http"]
        var lastError: (any Error)?
        for scheme in schemes {
            let base = "\(scheme)://\(apiHost)"
            let response: HTTPClientResponse
            do {
                response = try await execute(HTTPClientRequest(url: base + "/v2/"), timeout: .seconds(60))
            } catch {
                lastError = error
                continue
            }
            _ = try? await collect(response, limit: 1 << 20, what: "API check")
            switch response.status {
            case .ok:
                state.withValue { $0.baseURL = base }
            case .unauthorized:
                let challenge = response.headers.first(name: "WWW-Authenticate").flatMap(AuthChallenge.init(header:))
                state.withValue {
                    $0.baseURL = base
                    $0.challenge = challenge
                }
            default:
                throw BoxstackError(
                    .unsupported,
                    "\(base)/v2/ answered \(response.status.code); \(registry) does not look like an OCI registry.")
            }
            return base
        }
        let tried = schemes.map { "\($0)://\(apiHost)/v2/" }.joined(separator: " and ")
        throw BoxstackError(
            .network,
            "cannot reach the registry \(registry) at \(tried); check the address, that it is running"
                + (tlsVerify && !ImageReference.isLoopbackRegistry(registry) ? ", and its TLS certificate (or use --tls-verify=false)." : "."),
            cause: (lastError as? BoxstackError)?.cause ?? lastError)
    }

    /// The `Authorization` value for `scope` under the registry's challenge, fetching a token if needed.
    private func authorization(scope: String, refresh: Bool) async throws -> String? {
        let current = state.value
        switch current.challenge {
        case nil:
            return nil
        case .basic:
            return credentials.map { Self.basicAuthorization($0) }
        case .bearer(let realm, let service):
            if !refresh, let token = current.tokens[scope] { return "Bearer \(token)" }
            let token = try await fetchToken(realm: realm, service: service, scope: scope)
            state.withValue { $0.tokens[scope] = token }
            return "Bearer \(token)"
        }
    }

    private func fetchToken(realm: String, service: String?, scope: String) async throws -> String {
        guard var components = URLComponents(string: realm) else {
            throw BoxstackError(.invalidData, "the registry \(registry) names an invalid token realm \(realm).")
        }
        var items = components.queryItems ?? []
        if let service { items.append(URLQueryItem(name: "service", value: service)) }
        for part in scope.split(separator: " ") { items.append(URLQueryItem(name: "scope", value: String(part))) }
        components.queryItems = items
        guard let url = components.string else {
            throw BoxstackError(.invalidData, "the registry \(registry) names an invalid token realm \(realm).")
        }
        var request = HTTPClientRequest(url: url)
        if let credentials { request.headers.add(name: "Authorization", value: Self.basicAuthorization(credentials)) }
        let response = try await execute(request, timeout: .seconds(60))
        let body = try await collect(response, limit: 1 << 20, what: "token")
        guard response.status == .ok else {
            if response.status == .unauthorized || response.status == .forbidden { throw authenticationFailure(scope: scope) }
            throw failure(response.status, body: body, what: "a token from \(realm)")
        }
        struct TokenResponse: Decodable {
            var token: String?
            var accessToken: String?
            enum CodingKeys: String, CodingKey {
                case token
                case accessToken = "access_token"
            }
        }
        guard let decoded = try? JSONDecoder().decode(TokenResponse.self, from: body),
            let token = decoded.token ?? decoded.accessToken, !token.isEmpty
        else {
            throw BoxstackError(.invalidData, "the token service \(realm) of \(registry) sent no token.")
        }
        return token
    }

    private func authenticationFailure(scope: String) -> BoxstackError {
        if let credentials {
            let source = credentials.source.map { " from \($0)" } ?? ""
            return BoxstackError(
                .permission,
                "the registry \(registry) rejected the credentials of user \(credentials.username)\(source) for \(scope); check the user name and password.")
        }
        return BoxstackError(
            .permission,
            "the registry \(registry) requires authentication for \(scope); add credentials for \(registry) to $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json (e.g. with `skopeo login`).")
    }

    // MARK: Helpers

    static func pullScope(_ repository: String) -> String { "repository:\(repository):pull" }
    static func pushScope(_ repository: String) -> String { "repository:\(repository):pull,push" }

    private static func basicAuthorization(_ credentials: RegistryCredentials) -> String {
        "Basic " + Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
    }

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

    private func collect(_ response: HTTPClientResponse, limit: Int, what: String) async throws -> Data {
        do {
            return Data(try await response.body.collect(upTo: limit).readableBytesView)
        } catch {
            throw BoxstackError(.network, "cannot read the \(what) from the registry \(registry).", cause: error)
        }
    }

    /// An error for an unexpected status, with the registry's own error messages when it sent any.
    private func failure(_ status: HTTPResponseStatus, body: Data, what: String) -> BoxstackError {
        struct ErrorList: Decodable {
            struct Item: Decodable {
                var code: String?
                var message: String?
            }
            var errors: [Item]?
        }
        let messages = (try? JSONDecoder().decode(ErrorList.self, from: body))?.errors?
            .map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") } ?? []
        let reason = messages.isEmpty ? "" : " (\(messages.joined(separator: "; ")))"
        switch status {
        case .notFound:
            return BoxstackError(.notFound, "\(what) was not found on the registry \(registry)\(reason).")
        case .unauthorized, .forbidden:
            return BoxstackError(.permission, "the registry \(registry) refused \(what) with \(status.code)\(reason).")
        default:
            return BoxstackError(.network, "the registry \(registry) answered \(status.code) \(status.reasonPhrase) for \(what)\(reason).")
        }
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

/// A byte range of a file as an async sequence of buffers, so uploads stream without loading the file.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String
    let range: Range<Int64>
    let progress: (@Sendable (Int64) -> Void)?
    static let chunkSize = 1 << 20

    func makeAsyncIterator() -> Iterator { Iterator(path: path, position: range.lowerBound, end: range.upperBound, progress: progress) }

    struct Iterator: AsyncIteratorProtocol {
        let path: String
        var position: Int64
        let end: Int64
        let progress: (@Sendable (Int64) -> Void)?
        var file: OpenFile?

        init(path: String, position: Int64, end: Int64, progress: (@Sendable (Int64) -> Void)?) {
            self.path = path
            self.position = position
            self.end = end
            self.progress = progress
        }

        mutating func next() async throws -> ByteBuffer? {
            guard position < end else { return nil }
            if file == nil { file = try OpenFile(path: path) }
            guard let descriptor = file?.descriptor else { return nil }
            let count = Int(Swift.min(Int64(FileChunks.chunkSize), end - position))
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let offset = position
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                Swift.max(0, pread(descriptor, pointer.baseAddress, count, off_t(offset)))
            }
            guard read > 0 else {
                throw BoxstackError(.invalidData, "\(path) ended at byte \(position) while it was being uploaded.")
            }
            position += Int64(read)
            progress?(Int64(read))
            return buffer
        }
    }

    /// An open file descriptor, closed when the last iterator copy holding it goes away.
    final class OpenFile {
        let descriptor: Int32
        init(path: String) throws {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw BoxstackError(.notFound, "cannot read \(path): \(String(cString: strerror(errno))).")
            }
        }
        deinit { close(descriptor) }
    }
}
