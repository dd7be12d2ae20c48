import ArgumentParser
import Boxed
import BoxstackCore
import Foundation
import Machine

/// `boxstack gc`: removes what killed runs left behind.
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract:
            "Remove the domains and run directories that killed boxstack runs left behind, and warm images no run can use any more (live runs are kept)."
    )

    @Option(help: ArgumentHelp("libvirt URI (default as for builds).", valueName: "uri"))
    var connect: String?

    @Flag(name: .customLong("warm-images"), help: "Also remove every warm image that no run is using.")
    var allWarmImages = false

    func run() async throws {
        try await reportingErrors {
            let connection = try LibvirtConnection(uri: connect)
            let removed = try RunDirectory.collectGarbage(in: Paths().runsDirectory, connection: connection)
            print(removed.isEmpty ? "no leftover runs" : "removed \(removed.count) leftover run(s): \(removed.joined(separator: ", "))")
            let warm = try WarmImageStore(paths: Paths()).collectGarbage(all: allWarmImages)
            print(warm.isEmpty ? "no warm images to remove" : "removed \(warm.count) warm image(s): \(warm.joined(separator: ", "))")
        }
    }
}
