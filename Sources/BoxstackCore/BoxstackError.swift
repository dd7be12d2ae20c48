/// The one error type boxstack's libraries throw for conditions a user must act on.
///
/// `message` is one sentence that says what happened and, where there is one, what to do next.
/// `Code` wraps a private enum so codes can be added without breaking callers' switches.
public struct BoxstackError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidArgument, notFound, invalidData, checksumMismatch, network, permission
            case unsupported, timeout, processFailed, guestFailed, busy, interrupted, internalError
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let invalidArgument = Code(.invalidArgument)
        public static let notFound = Code(.notFound)
        public static let invalidData = Code(.invalidData)
        public static let checksumMismatch = Code(.checksumMismatch)
        public static let network = Code(.network)
        public static let permission = Code(.permission)
        public static let unsupported = Code(.unsupported)
        public static let timeout = Code(.timeout)
        public static let processFailed = Code(.processFailed)
        public static let guestFailed = Code(.guestFailed)
        public static let busy = Code(.busy)
        public static let interrupted = Code(.interrupted)
        public static let internalError = Code(.internalError)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    /// Extra lines shown after the message, such as the tail of a console log.
    public var details: String?
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, details: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.cause = cause
    }

    public var description: String {
        var text = message
        if let cause { text += " (\(cause))" }
        if let details, !details.isEmpty { text += "\n" + details }
        return text
    }
}
