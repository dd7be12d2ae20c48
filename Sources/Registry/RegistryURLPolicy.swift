import BoxstackCore
import Foundation
import NIOHTTP1

/// Which URLs a registry may send the client to, and which of them get the client's credentials.
///
/// A registry names URLs in its token challenge (the realm), in upload `Location` headers and in
/// redirects. The client contacts only `https` ones, and `http` ones only where the user chose plain
/// HTTP already: for a registry on this machine, or with `tlsVerify: false`. So a registry cannot
/// steer the client to `file:`, `ftp:` or a Unix socket (`http+unix:`), nor from HTTPS down to HTTP.
///
/// Credentials go only to the registry's own origin (scheme, host and port of the URL that answered
/// `/v2/`): Basic credentials or Bearer tokens there, and Basic credentials to the token realm.
struct RegistryURLPolicy: Sendable {
    /// The registry's `host[:port]`, for messages.
    let registry: String
    /// The origin of the registry's API; nil only for a base URL that does not parse.
    let origin: Origin?
    /// True when `http` URLs may be contacted.
    let allowsPlainHTTP: Bool

    /// Redirects are followed at most this often per request.
    static let maximumRedirects = 5

    /// The policy for `registry`, whose API answered at `baseURL` (`scheme://host[:port]`).
    init(registry: String, baseURL: String, tlsVerify: Bool) {
        self.registry = registry
        origin = Origin(baseURL)
        allowsPlainHTTP = ImageReference.isLoopbackRegistry(registry) || !tlsVerify
    }

    private static let schemeRule = "only https URLs (plain http only for a registry on this machine, or with --tls-verify=false)"

    /// The token service `realm` of a Bearer challenge as URL components, when it may be contacted.
    func tokenRealm(_ realm: String) throws -> URLComponents {
        let components = URLComponents(string: realm)
        guard let scheme = components?.scheme?.lowercased(), mayContact(scheme) else {
            throw BoxstackError(
                .unsupported,
                "the registry \(registry) asks for a token from \(Terminal.quoted(realm)), which boxstack does not contact: it sends credentials to \(Self.schemeRule)."
            )
        }
        guard let components, components.host?.isEmpty == false else {
            throw BoxstackError(.invalidData, "the registry \(registry) names an invalid token service \(Terminal.quoted(realm)).")
        }
        return components
    }

    /// The absolute URL of `location` (a `Location` header, absolute or relative to `current`), when
    /// it may be followed; `activity` says what the registry sent the client there for.
    func followedURL(_ location: String, relativeTo current: String, activity: String) throws -> String {
        guard let url = URL(string: location, relativeTo: URL(string: current))?.absoluteURL, url.host?.isEmpty == false,
            let scheme = url.scheme?.lowercased()
        else {
            throw BoxstackError(
                .invalidData, "the registry \(registry) sent an invalid Location \(Terminal.quoted(location)) while \(activity).")
        }
        guard mayContact(scheme) else {
            throw BoxstackError(
                .unsupported,
                "the registry \(registry) sent boxstack to \(Terminal.quoted(location)) while \(activity), which it does not follow: it follows \(Self.schemeRule)."
            )
        }
        return url.absoluteString
    }

    /// True when a request to `url` may carry the registry's credentials: it is on the registry's origin.
    func sendsCredentials(to url: String) -> Bool {
        origin != nil && Origin(url) == origin
    }

    /// True for the statuses whose `Location` a GET or HEAD follows.
    static func isRedirect(_ status: HTTPResponseStatus) -> Bool {
        [.movedPermanently, .found, .seeOther, .temporaryRedirect, .permanentRedirect].contains(status)
    }

    private func mayContact(_ scheme: String) -> Bool {
        scheme == "https" || (scheme == "http" && allowsPlainHTTP)
    }
}

/// Scheme, host and port of a URL: what two URLs must share to be the same server.
struct Origin: Equatable, Sendable {
    let scheme: String
    let host: String
    let port: Int?

    init?(_ url: String) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            let host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        self.scheme = scheme
        self.host = host
        port = components.port ?? ["http": 80, "https": 443][scheme]
    }
}
