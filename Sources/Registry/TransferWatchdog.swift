import BoxstackCore
import Foundation
import NIOCore

/// How far one exchange with a registry has got: fed by the code that moves its bytes, read by the
/// `TransferWatchdog` that guards it.
final class TransferProgress: Sendable {
    private struct State {
        var lastAdvance = ContinuousClock.now
        var bytesSinceAdvance = 0
    }

    private let state = LockedBox(State())

    /// Counts `count` bytes received, or taken by the HTTP client to be sent.
    func record(bytes count: Int) {
        state.withValue {
            $0.bytesSinceAdvance += count
            if $0.bytesSinceAdvance >= TransferWatchdog.minimumProgressBytes {
                $0.lastAdvance = .now
                $0.bytesSinceAdvance = 0
            }
        }
    }

    /// Notes that a response began: the registry answered, which counts as progress.
    func recordResponse() {
        state.withValue {
            $0.lastAdvance = .now
            $0.bytesSinceAdvance = 0
        }
    }

    /// Starts the stall interval again without counting progress.
    fileprivate func restartInterval() {
        state.withValue { $0.lastAdvance = .now }
    }

    fileprivate var current: (lastAdvance: ContinuousClock.Instant, bytesSinceAdvance: Int) {
        let state = state.value
        return (state.lastAdvance, state.bytesSinceAdvance)
    }
}

/// Runs one exchange with a registry (request and response body) under the stall rule and a
/// deadline (see `RegistryTimeouts`), cancelling it with a `timeout` error when either is broken.
struct TransferWatchdog: Sendable {
    /// Progress means at least this many bytes per stall interval, so a trickle counts as a stall.
    static let minimumProgressBytes = 16 << 10
    /// A watchdog waking this much later than planned found this process too busy to run it, or the
    /// transfer, on time.
    static let schedulingSlack = Duration.milliseconds(250)

    /// The registry's `host[:port]`, for messages.
    let registry: String
    let stall: Duration
    let deadline: Duration
    /// The environment variable that sets `deadline`, suggested in its error; nil when none does.
    let deadlineVariable: String?

    /// A deadline for the HTTP client's own bookkeeping, later than this watchdog's so that the
    /// watchdog, with its clearer error, always ends an overdue request first.
    var clientTimeout: TimeAmount {
        // Capped at a century, which keeps the nanoseconds within Int64.
        let seconds = min(deadline.components.seconds, 100 * 365 * 86_400)
        return .seconds(seconds + 60)
    }

    /// Runs `operation`, which must do all its waiting for the registry inside, and reports its
    /// progress. `activity` (e.g. "fetching the manifest team/app:v1") names it in errors.
    func run<Result: Sendable>(
        _ activity: String, _ operation: @escaping @Sendable (TransferProgress) async throws -> Result
    ) async throws -> Result {
        let progress = TransferProgress()
        let end = ContinuousClock.now + deadline
        return try await withThrowingTaskGroup(of: WatchedOutcome<Result>.self) { group in
            group.addTask { .finished(try await operation(progress)) }
            group.addTask {
                try await watch(progress, until: end, activity)
                return .watchEnded
            }
            // The first to end decides; the other is cancelled (AsyncHTTPClient closes the connection).
            defer { group.cancelAll() }
            guard case .finished(let result) = try await group.next() else { throw CancellationError() }
            return result
        }
    }

    private func watch(_ progress: TransferProgress, until end: ContinuousClock.Instant, _ activity: String) async throws {
        var plannedWake = progress.current.lastAdvance
        while true {
            let now = ContinuousClock.now
            // Time in which this process was too busy to run its tasks is not the registry's stall.
            if now - plannedWake > Self.schedulingSlack { progress.restartInterval() }
            let (lastAdvance, bytes) = progress.current
            if now >= end {
                let hint = deadlineVariable.map { "check the network, or allow more time with \($0) (seconds)" } ?? "check the network"
                throw BoxstackError(
                    .timeout, "the registry \(registry) did not finish \(activity) within \(deadline.spoken); \(hint).")
            }
            if now >= lastAdvance + stall {
                let moved = bytes == 0 ? "nothing" : "only \(bytes) bytes"
                throw BoxstackError(
                    .timeout,
                    "the registry \(registry) stalled while \(activity): \(moved) moved in \(stall.spoken); check the network, or allow longer stalls with \(RegistryTimeouts.stallVariable) (seconds)."
                )
            }
            plannedWake = min(lastAdvance + stall, end)
            try await Task.sleep(until: plannedWake, clock: .continuous)
        }
    }
}

/// How a child task of `TransferWatchdog.run` ended.
private enum WatchedOutcome<Result: Sendable>: Sendable {
    case finished(Result)
    case watchEnded
}

extension RegistryTimeouts {
    /// The watchdog for one request to `registry`: a blob download or upload, or a small request.
    func watchdog(registry: String, blob: Bool) -> TransferWatchdog {
        blob
            ? TransferWatchdog(registry: registry, stall: stall, deadline: blobDeadline, deadlineVariable: nil)
            : TransferWatchdog(
                registry: registry, stall: stall, deadline: requestDeadline,
                deadlineVariable: RegistryTimeouts.requestDeadlineVariable)
    }
}

extension Duration {
    /// The duration as a person would say it: "2 s", "1.5 s", "2 min", "24 h".
    fileprivate var spoken: String {
        let (wholeSeconds, attoseconds) = components
        let seconds = Double(wholeSeconds) + Double(attoseconds) / 1e18
        if attoseconds == 0, wholeSeconds >= 3600, wholeSeconds % 3600 == 0 { return "\(wholeSeconds / 3600) h" }
        if attoseconds == 0, wholeSeconds >= 60, wholeSeconds % 60 == 0 { return "\(wholeSeconds / 60) min" }
        if attoseconds == 0 { return "\(wholeSeconds) s" }
        return String(format: "%g s", seconds)
    }
}
