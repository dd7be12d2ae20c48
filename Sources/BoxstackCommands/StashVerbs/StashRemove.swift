import ArgumentParser
import BoxstackCore
import Foundation
import Stash

/// `boxstack stash rm NAME[:TAG]`.
struct StashRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a tag of a stash (NAME:TAG), or a whole stash with all its tags (NAME), and the layers nothing else uses.")

    @Argument(help: ArgumentHelp("The stash, or one of its tags.", valueName: "name[:tag]"))
    var reference: String

    func run() async throws {
        try await reportingErrors {
            let parsed = try StashReference(parsing: reference)
            let hasTag = reference.split(separator: "/").last?.contains(":") ?? false
            try StashStore().remove(name: parsed.name, tag: hasTag ? parsed.tag : nil)
            print(hasTag ? "removed \(parsed)" : "removed \(parsed.name) with all its tags")
        }
    }
}
