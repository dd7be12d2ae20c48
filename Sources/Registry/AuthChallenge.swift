import Foundation

/// What a registry asked for in its `WWW-Authenticate` header.
enum AuthChallenge: Sendable, Equatable {
    /// HTTP Basic authentication on every request.
    case basic
    /// A token from `realm` (Docker token authentication), requested per scope.
    case bearer(realm: String, service: String?)

    /// Parses `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`; nil for other schemes.
    init?(header: String) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        let scheme = trimmed.prefix { !$0.isWhitespace }.lowercased()
        let parameters = Self.parameters(String(trimmed.dropFirst(scheme.count)))
        switch scheme {
        case "basic":
            self = .basic
        case "bearer":
            guard let realm = parameters["realm"], !realm.isEmpty else { return nil }
            self = .bearer(realm: realm, service: parameters["service"])
        default:
            return nil
        }
    }

    /// The scope a bearer challenge names, e.g. `repository:team/app:pull`.
    static func scope(inHeader header: String) -> String? {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        let scheme = trimmed.prefix { !$0.isWhitespace }
        return parameters(String(trimmed.dropFirst(scheme.count)))["scope"]
    }

    /// `key=value` and `key="quoted, value"` pairs separated by commas; keys lower-cased.
    static func parameters(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var characters = Substring(text)
        while !characters.isEmpty {
            characters = characters.drop { $0 == "," || $0.isWhitespace }
            let key = characters.prefix { $0 != "=" && $0 != "," }
            characters = characters.dropFirst(key.count)
            guard characters.first == "=" else { continue }
            characters = characters.dropFirst()
            var value = ""
            if characters.first == "\"" {
                characters = characters.dropFirst()
                while let character = characters.first, character != "\"" {
                    characters = characters.dropFirst()
                    if character == "\\", let escaped = characters.first {
                        value.append(escaped)
                        characters = characters.dropFirst()
                    } else {
                        value.append(character)
                    }
                }
                characters = characters.dropFirst()
            } else {
                let raw = characters.prefix { $0 != "," }
                value = raw.trimmingCharacters(in: .whitespaces)
                characters = characters.dropFirst(raw.count)
            }
            result[key.trimmingCharacters(in: .whitespaces).lowercased()] = value
        }
        return result
    }
}
