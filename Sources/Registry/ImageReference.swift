import BoxstackCore
import Foundation

/// A parsed image reference, `[registry/]repository[:tag][@digest]`, following Docker's rules.
///
/// - The first path component names a registry when it contains a `.` or a `:`, or is `localhost`;
///   otherwise the registry is `docker.io`.
/// - On `docker.io` a single-component repository gets the `library/` prefix (`alpine` → `library/alpine`).
/// - Without tag and digest the tag is `latest`.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// The registry as written (`127.0.0.1:5000`, `quay.io`), with `index.docker.io` folded into `docker.io`.
    public var registry: String
    /// The repository path inside the registry (`library/alpine`, `team/app`).
    public var repository: String
    /// The tag, if one was given (or defaulted to `latest` when no digest was given).
    public var tag: String?
    /// The manifest digest, if one was given.
    public var digest: ContentDigest?

    public static let dockerHub = "docker.io"

    public init(registry: String, repository: String, tag: String? = nil, digest: ContentDigest? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses `text`; throws `invalidArgument` with the rule that was broken.
    public init(parsing text: String) throws {
        func invalid(_ reason: String) -> BoxstackError {
            BoxstackError(.invalidArgument, "\"\(text)\" is not a valid image reference: \(reason).")
        }
        var remainder = Substring(text)
        if let at = remainder.firstIndex(of: "@") {
            let digestText = String(remainder[remainder.index(after: at)...])
            guard let parsed = ContentDigest(digestText) else {
                throw invalid("the digest must be sha256: followed by 64 lower-case hex digits")
            }
            digest = parsed
            remainder = remainder[..<at]
        }
        // A tag is after the last ':' that follows the last '/', so `host:5000/repo` keeps its port.
        let lastSlash = remainder.lastIndex(of: "/") ?? remainder.startIndex
        if let colon = remainder[lastSlash...].lastIndex(of: ":") {
            let tagText = String(remainder[remainder.index(after: colon)...])
            guard Self.isValidTag(tagText) else {
                throw invalid("the tag must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
            }
            tag = tagText
            remainder = remainder[..<colon]
        }
        var components = remainder.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !components.isEmpty, components.allSatisfy({ !$0.isEmpty }) else {
            throw invalid("the name is empty or has an empty path component")
        }
        if components.count > 1, Self.looksLikeRegistry(components[0]) {
            let host = components.removeFirst()
            guard Self.isValidRegistry(host) else { throw invalid("\"\(host)\" is not a valid registry host[:port]") }
            registry = host == "index.docker.io" || host == "registry-1.docker.io" ? Self.dockerHub : host
        } else {
            registry = Self.dockerHub
        }
        if registry == Self.dockerHub, components.count == 1 { components.insert("library", at: 0) }
        for component in components where !Self.isValidPathComponent(component) {
            throw invalid(
                "\"\(component)\" must be lower-case letters and digits, separated by '.', '_', '__' or '-'")
        }
        repository = components.joined(separator: "/")
        guard repository.count <= 255 else { throw invalid("the repository name is longer than 255 characters") }
        if tag == nil, digest == nil { tag = "latest" }
    }

    /// What goes into `/v2/<repository>/manifests/<reference>`: the digest when given, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// True for registries on the loopback interface, which are reached over plain HTTP.
    public var isLoopback: Bool { Self.isLoopbackRegistry(registry) }

    /// The canonical text, `registry/repository[:tag][@digest]`.
    public var description: String {
        var text = "\(registry)/\(repository)"
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        return text
    }

    /// True when `registry` (host[:port]) is `localhost`, `127.x.x.x` or `[::1]`.
    public static func isLoopbackRegistry(_ registry: String) -> Bool {
        let host = hostPart(of: registry)
        return host == "localhost" || host == "[::1]" || host == "::1" || host.hasPrefix("127.")
    }

    /// The host of `host[:port]`, keeping brackets of an IPv6 literal.
    static func hostPart(of registry: String) -> String {
        if registry.hasPrefix("["), let close = registry.firstIndex(of: "]") {
            return String(registry[...close])
        }
        return String(registry.split(separator: ":", maxSplits: 1).first ?? "")
    }

    static func isValidTag(_ tag: String) -> Bool {
        guard let first = tag.unicodeScalars.first, tag.unicodeScalars.count <= 128 else { return false }
        func isWord(_ scalar: Unicode.Scalar) -> Bool {
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "_")
        }
        return isWord(first) && tag.unicodeScalars.allSatisfy { isWord($0) || $0 == "." || $0 == "-" }
    }

    /// One repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    static func isValidPathComponent(_ component: String) -> Bool {
        let bytes = Array(component.utf8)
        func isAlphanumeric(_ byte: UInt8) -> Bool { (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) }
        guard let first = bytes.first, let last = bytes.last, isAlphanumeric(first), isAlphanumeric(last) else {
            return false
        }
        var index = 0
        while index < bytes.count {
            if isAlphanumeric(bytes[index]) {
                index += 1
                continue
            }
            var end = index
            while end < bytes.count, !isAlphanumeric(bytes[end]) { end += 1 }
            let separator = String(decoding: bytes[index..<end], as: UTF8.self)
            let allowed =
                separator == "." || separator == "_" || separator == "__"
                || separator.allSatisfy { $0 == "-" }
            guard allowed else { return false }
            index = end
        }
        return true
    }

    private static func looksLikeRegistry(_ component: String) -> Bool {
        component.contains(".") || component.contains(":") || component == "localhost"
            || component.hasPrefix("[")
    }

    /// `host[:port]` with a DNS name, IPv4 address or bracketed IPv6 literal.
    private static func isValidRegistry(_ registry: String) -> Bool {
        var host = Substring(registry)
        if registry.hasPrefix("[") {
            guard let close = registry.firstIndex(of: "]") else { return false }
            let inside = registry[registry.index(after: registry.startIndex)..<close]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return false }
            host = registry[registry.index(after: close)...]
            if host.isEmpty { return true }
            guard host.first == ":" else { return false }
            return isValidPort(host.dropFirst())
        }
        if let colon = host.firstIndex(of: ":") {
            guard isValidPort(host[host.index(after: colon)...]) else { return false }
            host = host[..<colon]
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return !labels.isEmpty
            && labels.allSatisfy { label in
                !label.isEmpty && label.first != "-" && label.last != "-"
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
    }

    private static func isValidPort(_ text: Substring) -> Bool {
        guard let port = Int(text), text.allSatisfy(\.isNumber) else { return false }
        return (1...65535).contains(port)
    }
}
