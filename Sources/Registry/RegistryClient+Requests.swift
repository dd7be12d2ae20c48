import AsyncHTTPClient
import BoxstackCore
import Foundation
import NIOCore
import NIOHTTP1

/// How a `RegistryClient` sends requests: each under a `TransferWatchdog`, authenticated as the
/// registry's challenge asks, following redirects as `RegistryURLPolicy` allows.
extension RegistryClient {
    /// A response whose body was read whole.
    struct CollectedResponse: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: Data
    }

    /// What one authorized attempt of `send` ended with.
    private enum Attempt<Answer: Sendable>: Sendable {
        case answered(Answer)
        /// The registry answered 401 with this `WWW-Authenticate` header.
        case challenged(String?)
    }

    /// `send` for a response whose body (at most `limit` bytes) is read whole.
    func request(
        _ method: HTTPMethod, _ target: String, scope: String, headers: HTTPHeaders = [:], limit: Int = 1 << 20,
        blob: Bool = false, activity: String,
        body: @escaping @Sendable (TransferProgress) -> HTTPClientRequest.Body? = { _ in nil }
    ) async throws -> CollectedResponse {
        try await send(method, target, scope: scope, headers: headers, blob: blob, activity: activity, body: body) { response, transfer in
            let body = try await self.collect(response, limit: limit, transfer: transfer, activity: activity)
            return CollectedResponse(status: response.status, headers: response.headers, body: body)
        }
    }

    /// Sends one request and hands its response to `read`, both under a `TransferWatchdog` (for a blob
    /// transfer when `blob` is true); `activity` names the request in errors.
    ///
    /// `target` is a path (`/v2/...`) or an absolute URL the URL policy allowed. Requests to the
    /// registry's origin are authorized for `scope` and retried once after a 401 with a fresh
    /// challenge; requests elsewhere go without credentials. GET and HEAD follow redirects (see
    /// `following`). `body` is called per attempt so a streamed body can be sent again.
    func send<Answer: Sendable>(
        _ method: HTTPMethod, _ target: String, scope: String, headers: HTTPHeaders = [:], blob: Bool = false,
        activity: String, body: @escaping @Sendable (TransferProgress) -> HTTPClientRequest.Body? = { _ in nil },
        read: @escaping @Sendable (HTTPClientResponse, TransferProgress) async throws -> Answer
    ) async throws -> Answer {
        let base = try await baseURL()
        let policy = urlPolicy(base: base)
        let url = target.hasPrefix("/") ? base + target : target
        let authorized = policy.sendsCredentials(to: url)
        let watchdog = timeouts.watchdog(registry: registry, blob: blob)
        for attempt in 0..<2 {
            let authorization = authorized ? try await authorization(scope: scope, refresh: attempt > 0) : nil
            let outcome = try await watchdog.run(activity) { transfer -> Attempt<Answer> in
                var request = HTTPClientRequest(url: url)
                request.method = method
                request.headers = headers
                if let authorization { request.headers.replaceOrAdd(name: "Authorization", value: authorization) }
                request.body = body(transfer)
                let (response, answeredBy) = try await self.following(
                    request, authorization: authorization, policy: policy, timeout: watchdog.clientTimeout,
                    transfer: transfer, activity: activity)
                guard response.status == .unauthorized, policy.sendsCredentials(to: answeredBy) else {
                    return .answered(try await read(response, transfer))
                }
                _ = try? await self.collect(response, limit: 1 << 20, transfer: transfer, activity: activity)
                return .challenged(response.headers.first(name: "WWW-Authenticate"))
            }
            let header: String?
            switch outcome {
            case .answered(let answer): return answer
            case .challenged(let challenge): header = challenge
            }
            if let header, let challenge = AuthChallenge(header: header) {
                state.withValue { $0.challenge = challenge }
            }
            if attempt == 1 || header == nil { break }
            if case .basic = state.value.challenge, credentials == nil { break }
        }
        throw authenticationFailure(scope: scope)
    }

    /// Executes `request`, and for GET and HEAD follows up to `RegistryURLPolicy.maximumRedirects`
    /// redirects; each hop carries `authorization` only when it is on the registry's origin. Returns
    /// the last response and the URL that gave it.
    private func following(
        _ request: HTTPClientRequest, authorization: String?, policy: RegistryURLPolicy, timeout: TimeAmount,
        transfer: TransferProgress, activity: String
    ) async throws -> (HTTPClientResponse, String) {
        var current = request
        var redirects = 0
        while true {
            let response = try await execute(current, timeout: timeout, transfer: transfer)
            guard current.method == .GET || current.method == .HEAD, RegistryURLPolicy.isRedirect(response.status),
                let location = response.headers.first(name: "Location")
            else { return (response, current.url) }
            guard redirects < RegistryURLPolicy.maximumRedirects else {
                throw BoxstackError(
                    .network,
                    "the registry \(registry) redirected more than \(RegistryURLPolicy.maximumRedirects) times while \(activity); its storage setup is broken."
                )
            }
            redirects += 1
            // Read the redirect's body so its connection can serve the next request.
            _ = try? await collect(response, limit: 1 << 20, transfer: transfer, activity: activity)
            current.url = try policy.followedURL(location, relativeTo: current.url, activity: activity)
            current.headers.remove(name: "Authorization")
            if let authorization, policy.sendsCredentials(to: current.url) {
                current.headers.add(name: "Authorization", value: authorization)
            }
        }
    }

    /// Executes one HTTP request; `timeout` is only a backstop behind the watchdog.
    private func execute(
        _ request: HTTPClientRequest, timeout: TimeAmount, transfer: TransferProgress
    ) async throws -> HTTPClientResponse {
        state.withValue { $0.statistics.requests += 1 }
        do {
            let response = try await http.execute(request, timeout: timeout)
            transfer.recordResponse()
            return response
        } catch let error as BoxstackError {
            throw error
        } catch {
            throw BoxstackError(
                .network,
                "\(request.method) \(Terminal.sanitized(request.url)) failed: the registry \(registry) did not answer.", cause: error)
        }
    }

    /// The `scheme://host` that answers `/v2/`, found once; also learns the authentication challenge.
    func baseURL() async throws -> String {
        if let base = state.value.baseURL { return base }
        let schemes =
            ImageReference.isLoopbackRegistry(registry) ? ["http"] : tlsVerify ? ["https"] : ["https", "http"]
        let watchdog = timeouts.watchdog(registry: registry, blob: false)
        var lastError: (any Error)?
        for scheme in schemes {
            let base = "\(scheme)://\(apiHost)"
            let response: (status: HTTPResponseStatus, headers: HTTPHeaders)
            do {
                response = try await watchdog.run("checking its API at \(base)/v2/") { transfer in
                    let response = try await self.execute(
                        HTTPClientRequest(url: base + "/v2/"), timeout: watchdog.clientTimeout, transfer: transfer)
                    _ = try? await self.collect(response, limit: 1 << 20, transfer: transfer, activity: "checking its API")
                    return (response.status, response.headers)
                }
            } catch {
                lastError = error
                continue
            }
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
        if let timeout = lastError as? BoxstackError, timeout.code == .timeout { throw timeout }
        let tried = schemes.map { "\($0)://\(apiHost)/v2/" }.joined(separator: " and ")
        throw BoxstackError(
            .network,
            "cannot reach the registry \(registry) at \(tried); check the address, that it is running"
                + (tlsVerify && !ImageReference.isLoopbackRegistry(registry) ? ", and its TLS certificate (or use --tls-verify=false)." : "."),
            cause: (lastError as? BoxstackError)?.cause ?? lastError)
    }

    /// The URL policy for this registry, whose API answers at `base`.
    func urlPolicy(base: String) -> RegistryURLPolicy {
        RegistryURLPolicy(registry: registry, baseURL: base, tlsVerify: tlsVerify)
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
        var components = try urlPolicy(base: try await baseURL()).tokenRealm(realm)
        var items = components.queryItems ?? []
        if let service { items.append(URLQueryItem(name: "service", value: service)) }
        for part in scope.split(separator: " ") { items.append(URLQueryItem(name: "scope", value: String(part))) }
        components.queryItems = items
        guard let url = components.string else {
            throw BoxstackError(.invalidData, "the registry \(registry) names an invalid token realm \(Terminal.quoted(realm)).")
        }
        var tokenRequest = HTTPClientRequest(url: url)
        if let credentials { tokenRequest.headers.add(name: "Authorization", value: Self.basicAuthorization(credentials)) }
        let request = tokenRequest
        let activity = "fetching a token from \(Terminal.quoted(realm))"
        let watchdog = timeouts.watchdog(registry: registry, blob: false)
        let response = try await watchdog.run(activity) { transfer in
            let response = try await self.execute(request, timeout: watchdog.clientTimeout, transfer: transfer)
            let body = try await self.collect(response, limit: 1 << 20, transfer: transfer, activity: activity)
            return CollectedResponse(status: response.status, headers: response.headers, body: body)
        }
        guard response.status == .ok else {
            if response.status == .unauthorized || response.status == .forbidden { throw authenticationFailure(scope: scope) }
            throw failure(response.status, body: response.body, what: "a token from \(Terminal.quoted(realm))")
        }
        struct TokenResponse: Decodable {
            var token: String?
            var accessToken: String?
            enum CodingKeys: String, CodingKey {
                case token
                case accessToken = "access_token"
            }
        }
        guard let decoded = try? JSONDecoder().decode(TokenResponse.self, from: response.body),
            let token = decoded.token ?? decoded.accessToken, !token.isEmpty
        else {
            throw BoxstackError(.invalidData, "the token service \(Terminal.quoted(realm)) of \(registry) sent no token.")
        }
        return token
    }

    private func authenticationFailure(scope: String) -> BoxstackError {
        if let credentials {
            let source = credentials.source.map { " from \($0)" } ?? ""
            return BoxstackError(
                .permission,
                "the registry \(registry) rejected the credentials of user \(credentials.username)\(source) for \(scope); check the user name and password."
            )
        }
        return BoxstackError(
            .permission,
            "the registry \(registry) requires authentication for \(scope); add credentials for \(registry) to $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json (e.g. with `skopeo login`)."
        )
    }

    // MARK: Helpers

    private static func basicAuthorization(_ credentials: RegistryCredentials) -> String {
        "Basic " + Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
    }

    /// Reads a whole response body of at most `limit` bytes, reporting what arrives to `transfer`.
    func collect(
        _ response: HTTPClientResponse, limit: Int, transfer: TransferProgress, activity: String
    ) async throws -> Data {
        var data = Data()
        do {
            for try await buffer in response.body {
                transfer.record(bytes: buffer.readableBytes)
                guard data.count + buffer.readableBytes <= limit else {
                    throw BoxstackError(
                        .invalidData, "the registry \(registry) sent more than \(limit) bytes while \(activity); that is no registry response.")
                }
                data.append(contentsOf: buffer.readableBytesView)
            }
        } catch let error as BoxstackError {
            throw error
        } catch {
            throw BoxstackError(.network, "the registry \(registry) broke off its response while \(activity).", cause: error)
        }
        return data
    }

    /// An error for an unexpected status, with the registry's own error messages when it sent any.
    func failure(_ status: HTTPResponseStatus, body: Data, what: String) -> BoxstackError {
        struct ErrorList: Decodable {
            struct Item: Decodable {
                var code: String?
                var message: String?
            }
            var errors: [Item]?
        }
        let messages =
            (try? JSONDecoder().decode(ErrorList.self, from: body))?.errors?
            .map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") } ?? []
        let reason = messages.isEmpty ? "" : " (\(Terminal.sanitized(messages.joined(separator: "; "))))"
        switch status {
        case .notFound:
            return BoxstackError(.notFound, "\(what) was not found on the registry \(registry)\(reason).")
        case .unauthorized, .forbidden:
            return BoxstackError(.permission, "the registry \(registry) refused \(what) with \(status.code)\(reason).")
        default:
            return BoxstackError(
                .network, "the registry \(registry) answered \(status.code) \(Terminal.sanitized(status.reasonPhrase)) for \(what)\(reason).")
        }
    }
}
