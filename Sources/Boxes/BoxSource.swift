import BoxstackCore
import Foundation

/// Where a box's files are published: one directory (local, HTTP, openSUSE download server) or an OCI artifact.
public enum BoxSource: Sendable, Equatable, CustomStringConvertible {
    /// An `http://` or `https://` directory; `obs://` sources are mapped to one of these.
    case web(URL)
    /// A local directory (`file://` or a path relative to the catalog file).
    case directory(String)
    /// An OCI artifact whose layers carry the box files, named by `org.opencontainers.image.title`.
    case oci(registry: String, repository: String, reference: String)

    /// The openSUSE download server, where KIWI also looks up `obs://` repositories.
    public static let openSUSEDownloadServer = "https://download.opensuse.org/repositories"

    /// Parses a catalog `source:` value; a value without a scheme is a directory relative to `catalogDirectory`.
    public static func parse(_ text: String, relativeTo catalogDirectory: String) throws -> BoxSource {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw invalid(text, "it is empty") }
        guard let schemeEnd = trimmed.range(of: "://") else {
            let path = trimmed.hasPrefix("/") ? trimmed : catalogDirectory + "/" + trimmed
            return .directory(URL(fileURLWithPath: path).standardizedFileURL.path)
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        let rest = String(trimmed[schemeEnd.upperBound...])
        switch scheme {
        case "http", "https":
            guard let url = URL(string: trimmed.hasSuffix("/") ? trimmed : trimmed + "/"), url.host != nil else {
                throw invalid(text, "it is not a valid URL")
            }
            return .web(url)
        case "file":
            guard rest.hasPrefix("/") else { throw invalid(text, "a file:// source needs an absolute path (file:///dir/)") }
            return .directory(URL(fileURLWithPath: rest).standardizedFileURL.path)
        case "obs":
            return .web(try obsDownloadURL(rest, original: text))
        case "oci":
            return try parseOCI(rest, original: text)
        default:
            throw invalid(text, "the scheme \(scheme):// is not one of https, http, file, obs, oci")
        }
    }

    /// Maps `Project:Sub/repo` the way KIWI's `Uri` does: the last path part is the repository, every `:` in
    /// the project becomes `:/`, and both sit under the download server's `repositories/` tree.
    static func obsDownloadURL(_ projectAndRepository: String, original: String) throws -> URL {
        var parts = projectAndRepository.replacingOccurrences(of: ":/", with: ":")
            .split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard parts.count >= 2, let repository = parts.popLast() else {
            throw invalid(original, "an obs:// source needs a project and a repository (obs://Project:Sub/repo)")
        }
        let project = parts.joined(separator: "/").replacingOccurrences(of: ":", with: ":/")
        guard let url = URL(string: "\(openSUSEDownloadServer)/\(project)/\(repository)/") else {
            throw invalid(original, "it does not map to a valid download URL")
        }
        return url
    }

    private static func parseOCI(_ text: String, original: String) throws -> BoxSource {
        guard let slash = text.firstIndex(of: "/") else {
            throw invalid(original, "an oci:// source needs a registry and a repository (oci://registry/repo:tag)")
        }
        let registry = String(text[..<slash])
        var repository = String(text[text.index(after: slash)...])
        var reference = "latest"
        if let at = repository.range(of: "@") {
            reference = String(repository[at.upperBound...])
            repository = String(repository[..<at.lowerBound])
        } else if let colon = repository.lastIndex(of: ":"), !repository[colon...].contains("/") {
            reference = String(repository[repository.index(after: colon)...])
            repository = String(repository[..<colon])
        }
        guard !registry.isEmpty, !repository.isEmpty, !reference.isEmpty else {
            throw invalid(original, "an oci:// source needs a registry and a repository (oci://registry/repo:tag)")
        }
        return .oci(registry: registry, repository: repository, reference: reference)
    }

    private static func invalid(_ text: String, _ reason: String) -> BoxstackError {
        BoxstackError(.invalidArgument, "The box source '\(text)' is invalid: \(reason).")
    }

    public var description: String {
        switch self {
        case .web(let url): return url.absoluteString
        case .directory(let path): return "file://" + path + (path.hasSuffix("/") ? "" : "/")
        case .oci(let registry, let repository, let reference):
            return "oci://\(registry)/\(repository)" + (reference.hasPrefix("sha256:") ? "@" : ":") + reference
        }
    }
}
