import BoxstackCore
import Foundation
import XML

/// The merge rules of derived descriptions (README.md, "Derived descriptions"): what a `<derived>`
/// document replaces, adds and removes in the `<image>` description stored in its base stash.
///
/// The merged description is what KIWI runs on the base's root tree (`system build
/// --allow-existing-root`), so what the base's build already did to that tree and cannot do again
/// is left out of it. A conflict the rules cannot settle is an error naming the element and its file.
struct DescriptionMerge {
    let derived: XMLDocument
    let derivedPath: String
    /// The base description, changed in place into the merged one.
    let base: XMLDocument
    let basePath: String

    func apply() throws {
        guard let changes = derived.root, let image = base.root, image.name == "image" else {
            throw BoxstackError(
                .invalidData, "\(basePath): the stored description is not a KIWI description: it has no <image> root element.")
        }
        if let name = changes.attribute("name") { image.setAttribute("name", name) }
        dropWhatTheBaseBuildDid(image)
        for description in changes.children(named: "description") { mergeDescription(description, into: image) }
        for preferences in changes.children(named: "preferences") { try mergePreferences(preferences, into: image) }
        for repository in changes.children(named: "repository") { mergeRepository(repository, into: image) }
        for packages in changes.children(named: "packages") { mergePackages(packages, into: image) }
        for users in changes.children(named: "users") { mergeUsers(users, into: image) }
    }

    // MARK: Conflicts

    /// Refuses a derived description (`changes`, the root of the file `path`) that says two things about
    /// one package, repository, user, type, preference or description field; `DerivedDescription` checks
    /// this when it reads the file.
    static func checkConflicts(_ changes: XMLElement, path: String) throws {
        let packageChanges = changes.children(named: "packages").flatMap(\.children)
        let added = packageChanges.filter { $0.name == "package" }
        for removal in packageChanges where removal.name == "remove" {
            if let adding = added.first(where: { $0.attribute("name") == removal.attribute("name") }) {
                throw conflict(
                    removal, in: path, key: "name",
                    "it removes the package that <package name=\"\(adding.attribute("name") ?? "")\"> on line \(adding.line) adds; keep one of the two"
                )
            }
        }
        try requireUnique(changes.children(named: "repository"), in: path, key: repositoryKey, naming: "alias")
        try requireUnique(
            changes.children(named: "users").flatMap { $0.children(named: "user") }, in: path, key: { $0.attribute("name") }, naming: "name")
        let preferences = changes.children(named: "preferences").flatMap(\.children)
        try requireUnique(preferences.filter { $0.name == "type" }, in: path, key: { $0.attribute("image") }, naming: "image")
        try requireUnique(preferences.filter { $0.name != "type" }, in: path, key: { $0.name })
        try requireUnique(changes.children(named: "description").flatMap(\.children), in: path, key: { $0.name })
    }

    private static func requireUnique(
        _ elements: [XMLElement], in path: String, key: (XMLElement) -> String?, naming attribute: String? = nil
    ) throws {
        var seen: [String: XMLElement] = [:]
        for element in elements {
            guard let value = key(element) else { continue }
            if let first = seen[value] {
                throw conflict(
                    element, in: path, key: attribute,
                    "it is the same \(element.name) as the one on line \(first.line), so the merge cannot tell which one wins; keep one")
            }
            seen[value] = element
        }
    }

    private static func conflict(_ element: XMLElement, in path: String, key: String? = nil, _ reason: String) -> BoxstackError {
        let attribute = key.flatMap { name in element.attribute(name).map { " \(name)=\"\($0)\"" } } ?? ""
        return BoxstackError(.invalidArgument, "\(path):\(element.line): <\(element.name)\(attribute)>: \(reason).")
    }

    // MARK: Rules

    /// The base's bootstrap, uninstall and delete sections and its archives did their work on the tree
    /// when the base was built. On that tree they fail: apt's bootstrap (debootstrap) refuses a root
    /// that has files, apt refuses to remove what is no longer installed, and the archives' files stayed
    /// in the base's description directory, which the stash does not hold.
    private func dropWhatTheBaseBuildDid(_ image: XMLElement) {
        for section in image.children(named: "packages") {
            if ["bootstrap", "uninstall", "delete"].contains(section.attribute("type") ?? "") {
                section.remove()
            } else {
                for archive in section.children(named: "archive") { archive.remove() }
            }
        }
    }

    /// Each of author, contact and specification replaces the base's.
    private func mergeDescription(_ description: XMLElement, into image: XMLElement) {
        let target = image.children(named: "description").first ?? image.append("description", attributes: ["type": "system"])
        for child in description.children { replaceOrAppend(child, in: target) }
    }

    /// Into the base's first `<preferences>` that is not for a profile or an architecture: each child
    /// replaces the one of the same name, and the types (if any) replace all of its types.
    private func mergePreferences(_ preferences: XMLElement, into image: XMLElement) throws {
        guard
            let target = image.children(named: "preferences").first(where: { $0.attribute("profiles") == nil && $0.attribute("arch") == nil })
        else {
            throw Self.conflict(
                preferences, in: derivedPath,
                "the base description \(basePath) has <preferences> only for profiles or architectures, and the merge cannot pick one of them"
            )
        }
        let types = preferences.children(named: "type")
        if !types.isEmpty {
            for type in target.children(named: "type") { type.remove() }
            for type in types { target.append(copyOf: type) }
        }
        for child in preferences.children where child.name != "type" { replaceOrAppend(child, in: target) }
    }

    /// A repository with the alias of a base repository replaces it (without an alias: the one with its
    /// source path); any other comes after the base's repositories.
    private func mergeRepository(_ repository: XMLElement, into image: XMLElement) {
        let existing = image.children(named: "repository")
        let alias = repository.attribute("alias")
        let match = existing.first { candidate in
            alias.map { candidate.attribute("alias") == $0 } ?? (Self.sourcePath(candidate) == Self.sourcePath(repository))
        }
        if let match {
            match.replace(withCopyOf: repository)
        } else if let last = existing.last {
            last.insertAfter(copyOf: repository)
        } else {
            image.append(copyOf: repository)
        }
    }

    /// `<package>`s join the base's `<packages type="image">` (unless it has them already); each
    /// `<remove>` takes its package out of every base section and into `<packages type="uninstall">`.
    private func mergePackages(_ packages: XMLElement, into image: XMLElement) {
        var removed: [String] = []
        for name in packages.children(named: "remove").compactMap({ $0.attribute("name") }) where !removed.contains(name) {
            removed.append(name)
        }
        for section in image.children(named: "packages") {
            for package in section.children(named: "package") where removed.contains(package.attribute("name") ?? "") {
                package.remove()
            }
        }
        let added = packages.children(named: "package")
        if !added.isEmpty {
            let target =
                image.children(named: "packages").first { $0.attribute("type") == "image" && $0.attribute("profiles") == nil }
                ?? image.append("packages", attributes: ["type": "image"])
            var present = Set(target.children(named: "package").compactMap { $0.attribute("name") })
            for package in added where present.insert(package.attribute("name") ?? "").inserted {
                target.append(copyOf: package)
            }
        }
        if !removed.isEmpty {
            let uninstall = image.append("packages", attributes: ["type": "uninstall"])
            for name in removed { uninstall.append("package", attributes: ["name": name]) }
        }
    }

    /// A user with the name of a base user replaces it; any other joins the base's first `<users>`
    /// that is not for a profile.
    private func mergeUsers(_ users: XMLElement, into image: XMLElement) {
        for user in users.children(named: "user") {
            let existing = image.children(named: "users").flatMap { $0.children(named: "user") }
            if let match = existing.first(where: { $0.attribute("name") == user.attribute("name") }) {
                match.replace(withCopyOf: user)
                continue
            }
            let target = image.children(named: "users").first { $0.attribute("profiles") == nil } ?? image.append("users")
            target.append(copyOf: user)
        }
    }

    private func replaceOrAppend(_ element: XMLElement, in parent: XMLElement) {
        if let existing = parent.children(named: element.name).first {
            existing.replace(withCopyOf: element)
        } else {
            parent.append(copyOf: element)
        }
    }

    private static func sourcePath(_ repository: XMLElement) -> String? { repository.children(named: "source").first?.attribute("path") }

    /// What makes two repositories of one derived description the same: the alias, else the source path.
    private static func repositoryKey(_ repository: XMLElement) -> String? {
        repository.attribute("alias").map { "alias " + $0 } ?? sourcePath(repository).map { "source " + $0 }
    }
}
