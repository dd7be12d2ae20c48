import BoxstackCore
import Foundation
import Machine

/// Cold boots of one user take turns, at most `limit` at once; restores and the builds themselves do
/// not. Under TCG, boots beyond the host's cores starve each other: the guests stall in their timers
/// and all miss `--timeout` together (seven at once on 2 cores did, in the VM tier), where one after
/// another each takes its usual half minute.
///
/// A turn is a lock file, `<directory>/turn-<n>.lock`; a run killed mid-boot gives its turn back with
/// its process.
struct BootTurns {
    let directory: String
    let limit: Int

    /// `BOXSTACK_PARALLEL_BOOTS` when set; else one boot per core with KVM, one per two cores with TCG
    /// (a TCG guest keeps a core busy per vCPU while it boots).
    init(paths: Paths, accelerator: Accelerator, cores: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        directory = paths.bootTurnsDirectory
        if let text = paths.environment["BOXSTACK_PARALLEL_BOOTS"] {
            guard let value = Int(text), value > 0 else {
                throw BoxstackError(
                    .invalidArgument,
                    "BOXSTACK_PARALLEL_BOOTS=\(text) is not a number of boots of at least 1; set a count, or unset it to let boxstack choose.")
            }
            limit = value
        } else {
            limit = accelerator == .kvm ? max(1, cores) : max(1, cores / 2)
        }
    }

    /// Waits for a free turn, telling the user once that it waits; holding the returned lock is the turn.
    func take(report: (String) -> Void) async throws -> FileLock {
        try FileManager.default.makeDirectory(directory, mode: 0o700)
        var told = false
        while true {
            for index in 0..<limit {
                if let turn = try FileLock.attempt(path: "\(directory)/turn-\(index).lock") { return turn }
            }
            if !told {
                report(
                    "waiting for another box to finish booting: \(limit) boot\(limit == 1 ? "" : "s") at a time on this host (BOXSTACK_PARALLEL_BOOTS)"
                )
                told = true
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
