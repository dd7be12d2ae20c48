import ArgumentParser
import Boxes
import BoxstackCore
import Foundation
import Registry

/// `boxstack boxes …`: the box catalog and the per-user box cache.
struct BoxesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boxes",
        abstract: "List, fetch, update and remove build boxes.",
        subcommands: [
            BoxesList.self, BoxesFetch.self, BoxesUpdate.self, BoxesRemove.self, BoxesRun.self, BoxesWarm.self, BoxesBuild.self, BoxesPush.self,
        ])

    /// The root command's box options: ArgumentParser gives a parent's options to the parent wherever
    /// they stand, so the box verbs read them here (and refuse those they do not use).
    @ParentCommand var root: Boxstack
}

struct BoxesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Show each box and architecture with its cache state.")

    @Flag(help: "Print the list as JSON.")
    var json = false

    @ParentCommand var group: BoxesCommand

    struct Row: Encodable {
        var name: String
        var arch: String
        var description: String
        var state: String
        var size: Int64?
        var digest: String?
        var changedFiles: [String]?
    }

    func run() async throws {
        try group.root.refuseOptions(for: "boxes list", except: [])
        try await reportingErrors {
            let catalog = try BoxCatalog.load()
            let rows = try BoxCache().list(catalog).map { listing -> Row in
                var row = Row(name: listing.box.name, arch: listing.arch, description: listing.box.description, state: "not fetched")
                switch listing.status {
                case .notFetched:
                    if (try? listing.box.architecture(listing.arch))?.source == nil { row.state = "no source (build it; see boxes fetch)" }
                case .cached(let size, let digest):
                    row.state = "cached"
                    row.size = size
                    row.digest = digest.description
                case .updateAvailable(let size, let digest, let changed):
                    row.state = "update available"
                    row.size = size
                    row.digest = digest.description
                    row.changedFiles = changed
                }
                return row
            }
            if json {
                try printJSON(rows)
                return
            }
            let nameWidth = max(4, rows.map(\.name.count).max() ?? 0)
            print("NAME".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  ARCH     STATE")
            for row in rows {
                var line = row.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  "
                line += row.arch.padding(toLength: 7, withPad: " ", startingAt: 0) + "  " + row.state
                if let size = row.size, let digest = row.digest {
                    line += " (\(ByteCount.format(size)), disk \(digest.prefix(19))…)"
                }
                print(line)
            }
        }
    }
}

struct BoxesFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch", abstract: "Download a box into the cache, verifying every file (--arch/--aarch64 choose the architecture).")

    @Argument(help: "The box name.")
    var name: String

    @ParentCommand var group: BoxesCommand

    func run() async throws {
        try group.root.refuseOptions(for: "boxes fetch", except: ["--arch"])
        try await reportingErrors {
            let box = try BoxCatalog.load().box(named: name)
            let result = try await BoxCache(registryTimeouts: try RegistryTimeouts.fromEnvironment()).fetch(
                box, arch: group.root.box.requestedArch ?? hostArchitecture, progress: ProgressBar.isTerminal)
            let fetched =
                result.downloadedFiles.isEmpty
                ? "already up to date" : "downloaded \(result.downloadedFiles.joined(separator: ", ")) (\(ByteCount.format(result.downloadedBytes)))"
            print("\(box.name) (\(result.box.arch)): \(fetched); disk \(result.box.diskDigest)")
        }
    }
}

struct BoxesUpdate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Check cached boxes against their sources and download only the files that changed.")

    @Argument(help: "The box name (default: every cached box).")
    var name: String?

    @ParentCommand var group: BoxesCommand

    func run() async throws {
        try group.root.refuseOptions(for: "boxes update", except: [])
        try await reportingErrors {
            let catalog = try BoxCatalog.load()
            let boxes = try name.map { [try catalog.box(named: $0)] } ?? catalog.boxes
            let results = try await BoxCache(registryTimeouts: try RegistryTimeouts.fromEnvironment()).update(boxes, progress: ProgressBar.isTerminal)
            for result in results {
                let what =
                    result.downloadedFiles.isEmpty
                    ? "up to date" : "updated \(result.downloadedFiles.joined(separator: ", ")) (\(ByteCount.format(result.downloadedBytes)))"
                print("\(result.box.name) (\(result.box.arch)): \(what)")
            }
            if results.isEmpty { print("no cached boxes to update") }
        }
    }
}

struct BoxesRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a box from the cache.")

    @Argument(help: "The box name.")
    var name: String

    @ParentCommand var group: BoxesCommand

    func run() async throws {
        try group.root.refuseOptions(for: "boxes rm", except: [])
        try await reportingErrors {
            guard BoxDefinition.isValidName(name) else {
                throw BoxstackError(
                    .invalidArgument, "\(Terminal.quoted(name)) is not a box name; see boxstack boxes list for the boxes there are.")
            }
            guard try await BoxCache().remove(name) else {
                throw BoxstackError(.notFound, "the box \(name) is not in the cache; see boxstack boxes list.")
            }
            print("removed \(name)")
        }
    }
}
