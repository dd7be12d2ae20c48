import BoxstackCore
import Foundation
import XML

/// A derived description: a `<derived>` document (Schemas/derived.rng) that names its base stash
/// and holds only what the image adds to or changes in the description stored in that stash.
/// `merge(into:basePath:)` applies it by the rules of `DescriptionMerge`.
public struct DerivedDescription: Sendable, Equatable {
    /// The description file.
    public let path: String
    /// `<base stash>`: the stash (NAME[:TAG]) whose root tree and stored description the image builds on.
    public let baseStash: String
    /// Where `<base>` is, for messages about the base stash: `FILE:LINE: <base stash="...">`.
    public let baseLocation: String
    /// The bytes that were validated (and are merged).
    let data: Data

    /// The derived description in `directory`, or nil when the description KIWI would pick there is an
    /// ordinary `<image>` one (or there is none: KIWI in the box reports that, as for any build).
    public static func recognize(inDirectory directory: String) throws -> DerivedDescription? {
        guard let file = try? KiwiDescription.locate(in: directory) else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BoxstackError(.permission, "cannot read the description \(file).")
        }
        let document = try XMLDocument(data: data, name: file)
        guard document.root?.name == "derived" else { return nil }
        return try DerivedDescription(document: document, data: data, path: file)
    }

    /// Reads and validates the derived description `file`.
    public init(file: String) throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BoxstackError(.notFound, "cannot read the derived description \(file).")
        }
        try self.init(document: XMLDocument(data: data, name: file), data: data, path: file)
    }

    private init(document: XMLDocument, data: Data, path: String) throws {
        var problems = try document.relaxNGProblems(schemaPath: try Self.schemaPath())
        if !problems.isEmpty, let root = document.root, root.children.first?.name != "base" {
            // libxml2 would only say that the first element was not expected there.
            problems.insert("\(path):\(root.line): <derived>: its first element must be <base stash=\"NAME[:TAG]\"/>, the stash it builds on", at: 0)
        }
        guard problems.isEmpty else {
            throw BoxstackError(
                .invalidData,
                "\(path) is not a valid derived description (see Schemas/derived.rng): " + problems.joined(separator: "; ") + ".")
        }
        guard let root = document.root, let base = root.children(named: "base").first, let stash = base.attribute("stash") else {
            throw BoxstackError(.internalError, "\(path) passed the schema without a <base stash=...>.")
        }
        try DescriptionMerge.checkConflicts(root, path: path)
        self.path = path
        self.data = data
        baseStash = stash
        baseLocation = "\(path):\(base.line): <base stash=\"\(stash)\">"
    }

    /// The schema, `Schemas/derived.rng` of the checkout or installation the running boxstack belongs to.
    public static func schemaPath() throws -> String {
        guard let path = Paths.shippedFile("Schemas/derived.rng") else {
            throw BoxstackError(
                .notFound,
                "cannot find boxstack's derived-description schema (Schemas/derived.rng) above the boxstack executable; install boxstack with Scripts/setup."
            )
        }
        return path
    }

    /// The merged description: `base` (the description stored in the base stash, named `basePath` in
    /// messages) with this description merged in.
    public func merge(into base: Data, basePath: String) throws -> XMLDocument {
        let derived = try XMLDocument(data: data, name: path, droppingBlankText: true)
        let merged = try XMLDocument(data: base, name: basePath, droppingBlankText: true)
        try DescriptionMerge(derived: derived, derivedPath: path, base: merged, basePath: basePath).apply()
        return merged
    }
}
