import Foundation

/// Runs a blocking call (a libssh handshake, a read that waits on a socket) on a thread of its own, so
/// it does not hold one of the cooperative pool's threads, of which there is one per core.
///
/// The call is released before the caller resumes: what it captured (an SSH session, say) must not be
/// freed on this thread later, while the caller has gone on and perhaps begun to exit the process.
public func runOnOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let call = LockedBox<(@Sendable () throws -> T)?>(body)
    return try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            let result: Result<T, any Error>
            do {
                let taken = call.withValue { stored in
                    defer { stored = nil }
                    return stored!
                }
                result = Result { try taken() }
            }
            continuation.resume(with: result)
        }
    }
}
