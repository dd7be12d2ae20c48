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

    /// Merges `derived` into the description stored in its base stash (resolved already); returns the
    /// merged description as written.
    static func merge(_ derived: DerivedDescription, store: StashStore, targetDirectory: String, log: BuildLog) throws -> Data {
        let base = try StashReference(parsing: derived.baseStash)
        guard let stored = try store.file(storedDescription, in: [base]) else {
            throw BoxstackError(
                .notFound,
                "\(derived.baseLocation): the stash \(base) holds no stored description (\(storedDescription)), so there is nothing to derive from; "
                    + "build on it with --stash \(base) --description DIR and a whole KIWI description instead.")
        }
        let merged = try derived.merge(into: stored, basePath: "\(storedDescription) of the stash \(base)")
        let data = Data(merged.serialized().utf8)
        let path = targetDirectory + "/" + mergedFileName
        try data.writeAtomically(to: path)
        log.note("merged \(derived.path) into the description stored in \(base): \(path)")
        return data
    }

    /// Runs `body` (resolving the stashes); in a derived build its errors are told as the `<base>` element's.
    static func namingBase<T>(of derived: DerivedDescription?, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as BoxstackError {
            guard let derived else { throw error }
            throw BoxstackError(error.code, "\(derived.baseLocation): \(error.message)", details: error.details, cause: error.cause)
        }
    }
}
