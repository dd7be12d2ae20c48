/// What a stash records of the description its tree was built from, as image labels. The caller
/// reads the description (Sources/Kiwi); the store only writes what it is given.
public struct StashLabels: Sendable, Equatable {
    public var descriptionName: String?
    public var descriptionVersion: String?
    public var author: String?

    public init(descriptionName: String? = nil, descriptionVersion: String? = nil, author: String? = nil) {
        self.descriptionName = descriptionName
        self.descriptionVersion = descriptionVersion
        self.author = author
    }
}
