import ArgumentParser
import BoxstackCore
import Foundation
import Stash

/// `boxstack stash …`: root trees kept as OCI images.
struct StashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stash",
        abstract: "Keep a root tree as an OCI image (each stash of a name adds a layer), list, push, pull and unpack stashes.",
        subcommands: [])

    @Option(help: ArgumentHelp("The root tree to stash.", valueName: "dir"))
    var root: String?

    @Option(name: .customLong("container-name"), help: ArgumentHelp(
        "The stash name (default: the image name in ROOT/image/config.xml).", valueName: "name"))
    var containerName: String?

    @Option(help: ArgumentHelp("The tag.", valueName: "tag"))
    var tag: String = "latest"

    @Flag(help: "List the stashes.")
    var list = false

    @Flag(help: "With --list: print JSON.")
    var json = false

    func validate() throws {
        if list == (root != nil) { throw ValidationError("give either --root DIR or --list.") }
    }

    func run() async throws {
        try await reportingErrors {
            let store = StashStore()
            if list {
                let summaries = try store.list()
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    encoder.dateEncodingStrategy = .iso8601
                    print(String(decoding: try encoder.encode(summaries), as: UTF8.self))
                } else {
                    print(summaries.map { "\($0)" }.joined(separator: "\n"))
                }
                return
            }
            guard let root else { return }
            let result = try store.stash(root: root, name: containerName, tag: tag)
            print("\(result)")
        }
    }
}
