import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A registry on 127.0.0.1 that misbehaves on purpose (Tests/Support/registry_fault_server.py), serving
/// and receiving the images of an OCI layout, with a second listener that plays another host and a log
/// of every request's Authorization header. Stopped when the value is released.
public final class FaultRegistry: @unchecked Sendable {
    /// What goes wrong (see the script's documentation).
    public enum Fault: String, Sendable {
        case none
        case stallManifest = "stall-manifest"
        case stallBlob = "stall-blob"
        case trickleManifest = "trickle-manifest"
        case trickleBlob = "trickle-blob"
        case stallUpload = "stall-upload"
        case redirectBlob = "redirect-blob"
        case redirectLoop = "redirect-loop"
        case uploadElsewhere = "upload-elsewhere"
        case hostile
    }

    /// How the registry listener asks clients to authenticate.
    public enum Authentication: Sendable {
        case none
        case basic(username: String, password: String)
        /// Bearer tokens from `realm`, in which `{other}` stands for the other listener's port.
        case bearer(realm: String)
    }

    /// One logged request.
    public struct LoggedRequest: Decodable, Sendable {
        /// "registry", "other" or "unix".
        public var listener: String
        public var method: String
        public var path: String
        public var authorization: String?
    }

    public let port: Int
    /// The port of the listener that plays another host.
    public let otherPort: Int
    private let logPath: String
    private let process: Process
    private let control: TemporaryDirectory

    /// `127.0.0.1:PORT`, the registry part of image references.
    public var address: String { "127.0.0.1:\(port)" }

    /// Starts the server for `layout` on ports it picks itself; with `unixSocket`, it listens there too.
    public init(layout: String, fault: Fault = .none, authentication: Authentication = .none, unixSocket: String? = nil) throws {
        control = try TemporaryDirectory("fault-registry")
        logPath = control.file("requests.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var arguments = [
            "python3", repositoryRoot + "/Tests/Support/registry_fault_server.py", "--layout", layout, "--log", logPath,
            "--fault", fault.rawValue,
        ]
        switch authentication {
        case .none: break
        case .basic(let username, let password): arguments += ["--basic", "\(username):\(password)"]
        case .bearer(let realm): arguments += ["--realm", realm]
        }
        if let unixSocket { arguments += ["--unix-socket", unixSocket] }
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let firstLine = output.fileHandleForReading.readLine()
        struct Ports: Decodable {
            var registry: Int
            var other: Int
        }
        guard let ports = firstLine.flatMap({ try? JSONDecoder().decode(Ports.self, from: Data($0.utf8)) }) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw BoxstackError(.internalError, "the fault registry did not start (it printed \(firstLine ?? "nothing")).")
        }
        port = ports.registry
        otherPort = ports.other
    }

    deinit {
        // SIGKILL: the server holds nothing worth a clean shutdown, and it cannot be blocked.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Every request received so far, oldest first.
    public func requests() throws -> [LoggedRequest] {
        let text = try String(contentsOfFile: logPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(LoggedRequest.self, from: Data($0.utf8)) }
    }

    /// The requests received by `listener`.
    public func requests(on listener: String) throws -> [LoggedRequest] {
        try requests().filter { $0.listener == listener }
    }
}
