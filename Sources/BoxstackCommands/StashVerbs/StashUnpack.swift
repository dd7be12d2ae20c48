import ArgumentParser
import BoxstackCore
import Foundation
import Stash

/// `boxstack stash unpack NAME[:TAG]... --root DIR`.
struct StashUnpack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Stack stashes into a directory, in the order given (later ones over earlier ones, whiteouts applied).")

    @Argument(help: ArgumentHelp("The stashes, bottom first.", valueName: "name[:tag]"))
    var references: [String]

    @Option(help: ArgumentHelp("The directory to unpack into (created when missing).", valueName: "dir"))
    var root: String

    func validate() throws {
        if references.isEmpty { throw ValidationError("name at least one stash to unpack.") }
    }

    func run() async throws {
        try await reportingErrors {
            let parsed = try references.map { try StashReference(parsing: $0) }
            let report = try StashStore().unpack(parsed, into: root)
            print("unpacked \(parsed.map(\.description).joined(separator: ", ")) into \(root): \(report.entries) entries")
            for line in report.summary { print(line) }
        }
    }
}
