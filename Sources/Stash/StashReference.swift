import BoxstackCore
import Foundation

/// A stash name with a tag, written `NAME[:TAG]`.
public struct StashReference: Hashable, Sendable, CustomStringConvertible {
    /// The stash name (an OCI repository name, e.g. `debian-base` or `team/base`).
    public var name: String
    /// The tag; `latest` when not given.
    public var tag: String

    /// A reference to `name:tag`, both validated.
    public init(name: String, tag: String = "latest") throws {
        try StashReference.validate(name: name)
        try StashReference.validate(tag: tag)
        self.name = name
        self.tag = tag
    }

    /// Parses `NAME[:TAG]` (a colon after the last `/` starts the tag).
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") {
            try self.init(name: String(text[..<colon]), tag: String(text[text.index(after: colon)...]))
        } else {
            try self.init(name: text)
        }
    }

    public var description: String { "\(name):\(tag)" }

    /// Throws a helpful `invalidArgument` error unless `name` follows the OCI reference rules:
    /// lowercase `[a-z0-9]` components separated by `.`, `_`, `__` or dashes, joined by `/`.
    public static func validate(name: String) throws {
        let component = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
        // \A and \z: `^` and `$` would also match around a trailing newline.
        let pattern = "\\A\(component)(?:/\(component))*\\z"
        guard name.utf8.count <= 255, name.range(of: pattern, options: .regularExpression) != nil else {
            var suggestion = name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined()
            suggestion = suggestion.split(separator: "-", omittingEmptySubsequences: true).joined(separator: "-")
            let hint = suggestion.isEmpty ? "" : " such as \(suggestion)"
            throw BoxstackError(
                .invalidArgument,
                "\(Terminal.quoted(name)) is not a valid container name: use lowercase letters, digits and the separators '.', '_', '__', '-' and '/' between them; pass a valid name\(hint) with --container-name."
            )
        }
    }

    /// Throws `invalidArgument` unless `tag` is a valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    public static func validate(tag: String) throws {
        guard tag.range(of: "\\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\\z", options: .regularExpression) != nil else {
            throw BoxstackError(
                .invalidArgument,
                "\(Terminal.quoted(tag)) is not a valid tag: use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'.")
        }
    }
}
