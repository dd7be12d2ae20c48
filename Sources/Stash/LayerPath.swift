/// Names inside layers, read as container runtimes read them, and the OCI whiteout vocabulary.
///
/// A leading `/` or `./` is relative to the root (containerd, umoci and GNU tar do the same) and a
/// `/` or `.` entry is the root directory itself. A `..` component is refused: no tool that writes
/// layers produces one, and it could only mean a path outside the tree.
enum LayerPath {
    static let whiteoutPrefix = ".wh."
    static let opaqueMarker = ".wh..wh..opq"
    /// AUFS bookkeeping names (`.wh..wh.plnk`, `.wh..wh.aufs`), which containerd skips too.
    static let metadataPrefix = ".wh..wh."

    /// Why a layer entry's name is refused.
    struct UnsafeName: Error {
        let reason: String
    }

    /// What one layer entry's name means.
    enum Meaning: Equatable {
        /// The root directory itself (`/`, `.`, `./`).
        case root
        /// A file, directory or link at this path.
        case path(String)
        /// A whiteout: deletes this path (and its subtree) from the layers below.
        case whiteout(String)
        /// An opaque marker: hides the lower contents of this directory ("" for the root).
        case opaque(String)
        /// AUFS bookkeeping that has no meaning in the tree.
        case metadata
    }

    /// `raw` relative to the root, without `.` components or a trailing `/`; "" for the root itself.
    static func normalized(_ raw: String) throws(UnsafeName) -> String {
        var components: [Substring] = []
        for component in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." { throw UnsafeName(reason: "names with '..' are not allowed") }
            components.append(component)
        }
        return components.joined(separator: "/")
    }

    /// What the entry named `raw` means; whiteout names that name nothing (`.wh.`, `.wh..`, `.wh...`) are refused.
    static func meaning(of raw: String) throws(UnsafeName) -> Meaning {
        let path = try normalized(raw)
        if path.isEmpty { return .root }
        let (parent, name) = split(path)
        if name == opaqueMarker { return .opaque(parent) }
        if name.hasPrefix(metadataPrefix) { return .metadata }
        guard name.hasPrefix(whiteoutPrefix) else { return .path(path) }
        let hidden = name.dropFirst(whiteoutPrefix.count)
        if hidden.isEmpty || hidden == "." || hidden == ".." {
            throw UnsafeName(reason: "a whiteout must name an entry of its directory")
        }
        return .whiteout(join(parent, String(hidden)))
    }

    /// The whiteout name that deletes `path` (`dir/.wh.name`).
    static func whiteoutName(_ path: String) -> String {
        let (parent, name) = split(path)
        return join(parent, whiteoutPrefix + name)
    }

    /// `path`'s parent ("" at the top) and last component.
    static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    static func join(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }
}
