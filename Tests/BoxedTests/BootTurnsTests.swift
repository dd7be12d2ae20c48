import BoxstackCore
import Foundation
import Machine
import TestSupport
import Testing

@testable import Boxed

@Suite struct BootTurnsTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory("boot-turns") }

    private func paths(_ extra: [String: String] = [:]) -> Paths {
        Paths(environment: ["HOME": directory.path, "BOXSTACK_CACHE_DIR": directory.file("elsewhere")].merging(extra) { $1 })
    }

    @Test func tcgBootsOnePerTwoCoresKVMOnePerCoreAndTheEnvironmentDecides() throws {
        #expect(try BootTurns(paths: paths(), accelerator: .tcg, cores: 2).limit == 1)
        #expect(try BootTurns(paths: paths(), accelerator: .tcg, cores: 1).limit == 1)
        #expect(try BootTurns(paths: paths(), accelerator: .tcg, cores: 8).limit == 4)
        #expect(try BootTurns(paths: paths(), accelerator: .kvm, cores: 8).limit == 8)
        #expect(try BootTurns(paths: paths(["BOXSTACK_PARALLEL_BOOTS": "3"]), accelerator: .tcg, cores: 2).limit == 3)
    }

    @Test(arguments: ["0", "-2", "two", ""])
    func aCountOfBootsThatIsNoneIsRefusedWithTheVariableNamed(value: String) {
        #expect {
            try BootTurns(paths: paths(["BOXSTACK_PARALLEL_BOOTS": value]), accelerator: .tcg)
        } throws: { error in
            (error as? BoxstackError)?.message.contains("BOXSTACK_PARALLEL_BOOTS=\(value) is not") == true
        }
    }

    @Test func turnsAreTheUsersWhateverTheCache() throws {
        let turns = try BootTurns(paths: paths(), accelerator: .tcg, cores: 2)
        #expect(turns.directory == directory.path + "/.cache/boxstack/boot-turns")
        let runtime = try BootTurns(paths: paths(["XDG_RUNTIME_DIR": "/run/user/1000"]), accelerator: .tcg)
        #expect(runtime.directory == "/run/user/1000/boxstack/boot-turns")
    }

    @Test func aBootBeyondTheLimitWaitsSaysSoOnceAndGoesWhenATurnIsGivenBack() async throws {
        let turns = try BootTurns(paths: paths(["BOXSTACK_PARALLEL_BOOTS": "2"]), accelerator: .tcg)
        var held: [FileLock?] = [try await turns.take(report: { _ in }), try await turns.take(report: { _ in })]
        let notices = LockedBox<[String]>([])
        let waiting = Task { try await turns.take(report: { line in notices.withValue { $0.append(line) } }) }
        try await Task.sleep(for: .milliseconds(800))
        #expect(notices.value.count == 1)
        #expect(notices.value.first?.contains("2 boots at a time") == true, "\(notices.value)")
        held[1] = nil
        let third = try await waiting.value
        #expect(third.path == turns.directory + "/turn-1.lock")
        #expect(notices.value.count == 1)
        withExtendedLifetime(held) {}
    }
}
