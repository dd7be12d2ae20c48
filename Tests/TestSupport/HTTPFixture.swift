import BoxstackCore
import Foundation

/// A real HTTP file server on 127.0.0.1 (Tests/Support/http_server.py) serving `root`, with a request log
/// and faults injected on demand. Stopped when the value is released.
public final class HTTPFixture: @unchecked Sendable {
    /// A fault for the next request(s) to `path`.
    public enum Fault: Sendable {
        /// Answer with this HTTP status.
        case error(status: Int)
        /// Announce the full length, send `after` bytes, close cleanly.
        case truncate(after: Int)
        /// Announce the full length, send `after` bytes, reset the connection.
        case drop(after: Int)
        /// Send the whole body with the byte at `offset` flipped.
        case corrupt(offset: Int)
        /// Answer a range request with 200 and the whole file, as a server without range support does.
        case noRange
    }

    /// One logged request.
    public struct ServedRequest: Decodable, Sendable {
        public var method: String
        public var path: String
        public var range: String?
        public var status: Int
        /// Body bytes the server sent (or meant to send before a fault).
        public var bytes: Int64
    }

    /// The served directory.
    public let root: String
    public let port: Int
    private let logPath: String
    private let faultsPath: String
    private let process: Process
    private let control: TemporaryDirectory

    /// `http://127.0.0.1:PORT/` followed by `path`.
    public func url(_ path: String = "") -> String { "http://127.0.0.1:\(port)/\(path)" }

    /// Starts the server on a free port chosen by the server itself.
    public init(root: String) throws {
        self.root = root
        control = try TemporaryDirectory("http-fixture")
        logPath = control.file("requests.log")
        faultsPath = control.file("faults.json")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", repositoryRoot + "/Tests/Support/http_server.py", "--root", root, "--log", logPath,
            "--faults", faultsPath,
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let firstLine = output.fileHandleForReading.readLine()
        guard let port = firstLine.flatMap({ Int($0) }) else {
            process.terminate()
            throw BoxstackError(.internalError, "The test HTTP server did not start (it printed \(firstLine ?? "nothing")).")
        }
        self.port = port
    }

    deinit {
        // SIGKILL: the server holds nothing worth a clean shutdown, and it cannot be blocked.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Replaces the pending faults with `faults` (path relative to the root, e.g. `box/disk.qcow2`).
    public func inject(_ faults: [(path: String, fault: Fault)]) throws {
        let rules: [[String: Any]] = faults.map { path, fault in
            var rule: [String: Any] = ["path": "/" + path]
            switch fault {
            case .error(let status):
                rule["action"] = "error"
                rule["status"] = status
            case .truncate(let after):
                rule["action"] = "truncate"
                rule["after"] = after
            case .drop(let after):
                rule["action"] = "drop"
                rule["after"] = after
            case .corrupt(let offset):
                rule["action"] = "corrupt"
                rule["after"] = offset
            case .noRange:
                rule["action"] = "no-range"
            }
            return rule
        }
        try JSONSerialization.data(withJSONObject: rules).writeAtomically(to: faultsPath)
    }

    /// Every request served so far, oldest first.
    public func requests() throws -> [ServedRequest] {
        let text = try String(contentsOfFile: logPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(ServedRequest.self, from: Data($0.utf8)) }
    }

    /// Forgets the requests logged so far.
    public func clearLog() throws {
        try Data().write(to: URL(fileURLWithPath: logPath))
    }

    /// Body bytes sent for GET requests whose path does not end in `.sha256`: the box bytes transferred.
    public func boxBytesServed() throws -> Int64 {
        try requests().filter { $0.method == "GET" && !$0.path.hasSuffix(".sha256") }.reduce(0) { $0 + $1.bytes }
    }
}

extension FileHandle {
    /// Reads up to the next newline (without it); nil at end of file.
    func readLine() -> String? {
        var bytes = Data()
        while let byte = try? read(upToCount: 1), let first = byte.first {
            if first == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(first)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
