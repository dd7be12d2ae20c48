import BoxstackCore
import Foundation
import XML

/// What boxstack needs to know of a KIWI image description, read with libxml2.
public struct KiwiDescription: Sendable, Equatable {
    /// The description file that was read.
    public var path: String
    public var name: String
    public var version: String?
    public var author: String?
    public var specification: String?
    /// The package manager named in the preferences (`apt`, `zypper`, `dnf4`, …).
    public var packageManager: String?
    /// Repository source paths, in document order.
    public var repositories: [String]
    /// Packages of the `<packages type="bootstrap">` sections.
    public var bootstrapPackages: [String]
    /// The names of the profiles the description declares.
    public var profiles: [String]

    /// Reads the description in `directory`: `config.xml`, or the single `*.kiwi` file, as KIWI does.
    public init(directory: String) throws {
        try self.init(file: KiwiDescription.locate(in: directory))
    }

    /// Reads the description file at `file`.
    public init(file: String) throws {
        try self.init(document: XMLDocument(contentsOfFile: file), path: file)
    }

    /// Reads a description from `data`, named `path` in messages (one read from a box, say).
    public init(data: Data, path: String) throws {
        try self.init(document: XMLDocument(data: data, name: path), path: path)
    }

    /// The description a built root tree carries (`image/config.xml`, where KIWI leaves it), or nil.
    public static func stored(inRoot root: String) throws -> KiwiDescription? {
        let file = root + "/image/config.xml"
        return FileManager.default.fileExists(atPath: file) ? try KiwiDescription(file: file) : nil
    }

    private init(document: XMLDocument, path file: String) throws {
        guard document.root?.name == "image", let name = document.string("/image/@name"), !name.isEmpty else {
            throw BoxstackError(.invalidData, "\(file) is not a KIWI description: it has no <image name=...> root element.")
        }
        path = file
        self.name = name
        version = document.string("/image/preferences/version")?.trimmed
        author = document.string("/image/description/author")?.trimmed
        specification = document.string("/image/description/specification")?.trimmed
        packageManager = document.string("/image/preferences/packagemanager")?.trimmed
        repositories = document.strings("/image/repository/source/@path")
        bootstrapPackages = document.strings("/image/packages[@type='bootstrap']/package/@name")
        profiles = document.strings("/image/profiles/profile/@name")
    }

    /// Refuses a description that KIWI cannot build on top of an existing root tree (a stackbuild):
    /// KIWI's apt bootstrap is debootstrap, which will not unpack into a root that has files.
    public func checkBuildsOnExistingRoot() throws {
        guard packageManager == "apt", !bootstrapPackages.isEmpty else { return }
        throw BoxstackError(
            .invalidArgument,
            "\(path) has a <packages type=\"bootstrap\"> section, but on top of a stash the root tree exists already and "
                + "KIWI's apt bootstrap (debootstrap) refuses to unpack into it; move \(bootstrapPackages.joined(separator: ", ")) "
                + "to <packages type=\"image\">.")
    }

    /// The description file KIWI would pick in `directory`.
    public static func locate(in directory: String) throws -> String {
        let config = directory + "/config.xml"
        if FileManager.default.fileExists(atPath: config) { return config }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let kiwiFiles = entries.filter { $0.hasSuffix(".kiwi") }.sorted()
        switch kiwiFiles.count {
        case 1: return directory + "/" + kiwiFiles[0]
        case 0: throw BoxstackError(.notFound, "\(directory) holds no KIWI description (config.xml or *.kiwi).")
        default:
            throw BoxstackError(
                .invalidArgument, "\(directory) holds several *.kiwi files (\(kiwiFiles.joined(separator: ", "))); keep one.")
        }
    }
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
