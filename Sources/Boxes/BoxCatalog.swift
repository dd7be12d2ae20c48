import BoxstackCore
import Foundation

/// The boxes boxstack knows: the built-in catalog, with a user catalog's entries overriding it by name.
public struct BoxCatalog: Sendable {
    /// Every box, built-in ones first in file order, then boxes only the user catalog defines.
    public var boxes: [BoxDefinition]

    public init(boxes: [BoxDefinition]) {
        self.boxes = boxes
    }

    /// Loads the built-in catalog (found next to the executable unless `builtIn` names it) and, when given,
    /// the user catalog, whose entries replace built-in ones of the same name.
    ///
    /// - Parameters:
    ///   - builtIn: the built-in catalog file; nil finds it with `builtInCatalogPath()`.
    ///   - user: a user catalog file; defaults to `BOXSTACK_CATALOG`.
    public static func load(builtIn: String? = nil, user: String? = Paths().userCatalog) throws -> BoxCatalog {
        let user = user.flatMap { $0.isEmpty ? nil : $0 }
        var boxes: [BoxDefinition]
        do {
            boxes = try parse(file: try builtIn ?? builtInCatalogPath())
        } catch let error as BoxstackError where builtIn == nil && user != nil && error.code == .notFound {
            // An installation without the built-in catalog still works from the user's own catalog.
            boxes = []
        }
        if let user {
            for box in try parse(file: user) {
                if let index = boxes.firstIndex(where: { $0.name == box.name }) {
                    boxes[index] = box
                } else {
                    boxes.append(box)
                }
            }
        }
        return BoxCatalog(boxes: boxes)
    }

    /// Parses one catalog file.
    public static func parse(file path: String) throws -> [BoxDefinition] {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw BoxstackError(.notFound, "The box catalog \(absolute) does not exist or cannot be read.")
        }
        return try parse(yaml: String(decoding: data, as: UTF8.self), path: absolute)
    }

    /// Parses catalog text; `path` is used in error messages and to resolve relative `source:` directories.
    public static func parse(yaml: String, path: String) throws -> [BoxDefinition] {
        try CatalogParser(path: path).parse(yaml)
    }

    /// The box called `name`, or an error listing the known ones.
    public func box(named name: String) throws -> BoxDefinition {
        guard let box = boxes.first(where: { $0.name == name }) else {
            let known = boxes.map(\.name).joined(separator: ", ")
            throw BoxstackError(.notFound, "There is no box called \(name); known boxes: \(known).")
        }
        return box
    }

    /// The catalog that ships with boxstack (`Boxes/catalog.yaml` of a checkout or an installation).
    public static func builtInCatalogPath() throws -> String {
        guard let path = Paths.shippedFile("Boxes/catalog.yaml") else {
            throw BoxstackError(
                .notFound,
                "Cannot find the built-in box catalog (Boxes/catalog.yaml) above the boxstack executable; set BOXSTACK_CATALOG to a catalog file.")
        }
        return path
    }
}
