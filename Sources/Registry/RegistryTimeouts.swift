import BoxstackCore
import Foundation

/// How long a `RegistryClient` waits for a registry before it gives up.
///
/// Every request runs under two rules, each ending it with a `timeout` error that names the registry
/// and what was being transferred:
/// - the stall rule: within every `stall` interval the response must begin or at least
///   `TransferWatchdog.minimumProgressBytes` must arrive or be sent, so a registry that goes silent
///   after its headers, or trickles a byte a second, is given up on after `stall`;
/// - a deadline for the whole request: `requestDeadline` for manifests, tokens and other small
///   requests, `blobDeadline` for blob downloads and uploads (large blobs take long, but the stall
///   rule still applies to every moment of them).
public struct RegistryTimeouts: Sendable, Equatable {
    /// The longest a request may go without progress.
    public var stall: Duration
    /// The longest a small request (manifest, token, blob check, upload start) may take in all.
    public var requestDeadline: Duration
    /// The longest a blob download or upload may take in all.
    public var blobDeadline: Duration

    /// The environment variable that sets `stall`, in seconds.
    public static let stallVariable = "BOXSTACK_REGISTRY_STALL_TIMEOUT"
    /// The environment variable that sets `requestDeadline`, in seconds.
    public static let requestDeadlineVariable = "BOXSTACK_REGISTRY_TIMEOUT"

    public init(stall: Duration = .seconds(60), requestDeadline: Duration = .seconds(120), blobDeadline: Duration = .seconds(86_400)) {
        self.stall = stall
        self.requestDeadline = requestDeadline
        self.blobDeadline = blobDeadline
    }

    /// The defaults, with `stall` from `$BOXSTACK_REGISTRY_STALL_TIMEOUT` and `requestDeadline` from
    /// `$BOXSTACK_REGISTRY_TIMEOUT` (seconds, fractions allowed) where set; a value that is not a
    /// positive number is an `invalidArgument` error naming the variable.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> RegistryTimeouts {
        var timeouts = RegistryTimeouts()
        if let stall = try seconds(stallVariable, in: environment) { timeouts.stall = stall }
        if let deadline = try seconds(requestDeadlineVariable, in: environment) { timeouts.requestDeadline = deadline }
        return timeouts
    }

    private static func seconds(_ variable: String, in environment: [String: String]) throws -> Duration? {
        guard let text = environment[variable] else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0 else {
            throw BoxstackError(
                .invalidArgument, "\(variable) must be a positive number of seconds, not \(Terminal.quoted(text)).")
        }
        // A year is as good as forever here, and keeps the conversion to Duration in range.
        return .seconds(min(value, 365 * 86_400))
    }
}
