import ArgumentParser
import BoxstackCore
import Foundation
import Machine

/// `boxstack gc`: removes what killed runs left behind.
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove the domains and run directories that killed boxstack runs left behind (live runs are kept).")

    @Option(help: ArgumentHelp("libvirt URI (default as for builds).", valueName: "uri"))
    var connect: String?

    func run() async throws {
        try await reportingErrors {
            let connection = try LibvirtConnection(uri: connect)
            let removed = try RunDirectory.collectGarbage(in: Paths().runsDirectory, connection: connection)
            print(removed.isEmpty ? "nothing to remove" : "removed \(removed.count) leftover run(s): \(removed.joined(separator: ", "))")
        }
    }
}
