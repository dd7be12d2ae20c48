import BoxstackCore
import Foundation
import Testing

@Suite struct OwnThreadTests {
    /// What the call captured is freed before the caller goes on, never later on the call's thread,
    /// where it could race the process's exit (an SSH session freed after libcrypto's teardown).
    @Test func whatTheCallCapturedIsFreedBeforeTheCallerResumes() async throws {
        let freed = LockedBox(false)
        do {
            let captured = DeinitFlag(freed)
            let answer = try await runOnOwnThread { captured.answer }
            #expect(answer == 42)
        }
        #expect(freed.value)
    }

    @Test func anErrorOfTheCallReachesTheCaller() async {
        await #expect(throws: CocoaError.self) { try await runOnOwnThread { throw CocoaError(.fileNoSuchFile) } }
    }
}

private final class DeinitFlag: Sendable {
    let freed: LockedBox<Bool>
    let answer = 42
    init(_ freed: LockedBox<Bool>) { self.freed = freed }
    deinit { freed.value = true }
}
