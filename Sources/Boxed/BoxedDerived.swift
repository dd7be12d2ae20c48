import BoxstackCore
import Foundation
import Kiwi
import Stash

/// The host side of a derived build, done before the box starts: the description stored in the base
/// stash, merged with the derived one and written into the target directory for the user to read.
enum BoxedDerived {
    /// The merged description's name in the target directory.
    static let mergedFileName = "merged-description.xml"
    /// Where KIWI leaves its description in a root tree, so where a stash stores it.
    static let storedDescription = "image/config.xml"

    /// Merges `derived` into the description stored in `base`; returns the merged description as written.
    static func merge(_ derived: DerivedDescription, base: StashReference, store: StashStore, targetDirectory: String) throws -> Data {
        guard let stored = try store.file(storedDescription, in: [base]) else {
            throw BoxstackError(
                .notFound,
                "\(derived.baseLocation): the stash \(base) holds no stored description (\(storedDescription)), so there is nothing to derive from; "
                    + "build on it with --stash \(base) --description DIR and a whole KIWI description instead.")
        }
        let merged = try derived.merge(into: stored, basePath: "\(storedDescription) of the stash \(base)")
        let data = Data(merged.serialized().utf8)
        try data.writeAtomically(to: targetDirectory + "/" + mergedFileName)
        return data
    }
}
