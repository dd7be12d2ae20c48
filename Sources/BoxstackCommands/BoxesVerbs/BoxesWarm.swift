import ArgumentParser
import Boxed
import BoxstackCore
import Foundation

/// `boxstack boxes warm NAME [--count N]`: make (or check) the warm images later runs of this box shape restore.
struct BoxesWarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warm",
        abstract: "Make the warm images of a box that runs restore instead of booting (one per concurrent run).",
        discussion:
            "The box options of 'boxstack --help' that shape a box apply (--arch, --box-memory, --box-smp-cpus, --machine, --cpu, --no-accel, --shared-path, ...): a warm image serves runs of exactly that shape. Runs make missing images themselves; this verb makes them ahead of time."
    )

    @Argument(help: "The box name.")
    var name: String

    @Option(help: ArgumentHelp("How many runs of this shape should find an image at once.", valueName: "n"))
    var count = 1

    @ParentCommand var group: BoxesCommand

    func validate() throws {
        guard (1...WarmImageStore.slotsPerShape).contains(count) else {
            throw ValidationError("--count must be between 1 and \(WarmImageStore.slotsPerShape).")
        }
    }

    func run() async throws {
        let box = group.root.box
        try group.root.refuseOptions(for: "boxes warm", except: BoxOptions.sessionOptionNames.subtracting(["--box-debug", "--cold"]))
        try await reportingErrors {
            let options = try box.sessionOptions(image: try await box.cachedImage(named: name))
            let started = ContinuousClock.now
            // Held together: each session holds its own slot, so `count` sessions fill `count` slots.
            let sessions = try await withThrowingTaskGroup(of: BoxSession.self) { group in
                for _ in 0..<count { group.addTask { try await BoxSession.start(options) } }
                var sessions: [BoxSession] = []
                do {
                    for try await session in group { sessions.append(session) }
                } catch {
                    for session in sessions { session.shutdown() }
                    throw error
                }
                return sessions
            }
            let warm = sessions.filter(\.startedWarm).count
            for session in sessions { session.shutdown() }
            guard warm == count else {
                throw BoxstackError(
                    .unsupported,
                    "\(count - warm) of \(count) runs of \(name) booted cold: no warm image could be made (the lines above say why).")
            }
            let seconds = (ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))
            let directory = WarmImageStore(paths: options.paths).directory
            print("\(count) warm image(s) of \(name) (\(options.image.architecture)) ready after \(seconds) in \(directory)")
        }
    }
}
