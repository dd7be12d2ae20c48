import XML

/// The labels a stash records from the tree's KIWI description.
public struct DescriptionInfo: Sendable, Equatable {
    public var name: String?
    public var version: String?
    public var author: String?

    /// Reads `/image/@name`, `/image/preferences/version` and `/image/description/author`.
    public init(configXML path: String) throws {
        try self.init(document: XMLDocument(contentsOfFile: path))
    }

    init(document: XMLDocument) {
        name = document.string("/image/@name")
        version = document.string("/image/preferences/version")
        author = document.string("/image/description/author")
    }
}
