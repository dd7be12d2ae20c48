import Foundation

/// Runs a blocking call (a libssh handshake, a read that waits on a socket) on a thread of its own, so
/// it does not hold one of the cooperative pool's threads, of which there is one per core.
public func runOnOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
