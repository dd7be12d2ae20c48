import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real Debian `docker-registry` (distribution 2.8) listening on 127.0.0.1 with its own config:
/// filesystem storage in a temporary directory, deletes enabled, optionally with authentication.
///
/// The processes are stopped by `stop()` or, at the latest, when the value is released.
public final class RegistryServer: @unchecked Sendable {
    /// How clients must authenticate.
    public enum Authentication: Sendable {
        case none
        /// htpasswd (bcrypt, made with `htpasswd -B`): HTTP Basic on every request.
        case basic(username: String, password: String)
        /// Docker token authentication: a token server (Tests/Support/registry_token_server.py) on its
        /// own port checks these credentials and issues RS256 JWTs that the registry verifies.
        case token(username: String, password: String)
    }

    public let port: Int
    public let authentication: Authentication
    /// Holds the config, htpasswd or token keys, logs and storage.
    public let directory: TemporaryDirectory
    private let process: Process
    private let tokenServer: Process?

    /// `127.0.0.1:PORT`, the registry part of image references.
    public var address: String { "127.0.0.1:\(port)" }
    /// The filesystem driver's root directory.
    public var storageDirectory: String { directory.file("storage") }
    /// What the registry logged so far.
    public var log: String { (try? String(contentsOfFile: directory.file("registry.log"), encoding: .utf8)) ?? "" }

    /// Starts a registry and waits until it accepts connections.
    public init(authentication: Authentication = .none) throws {
        guard let executable = Subprocess.which("docker-registry") else {
            throw BoxstackError(.notFound, "docker-registry is not installed; run Scripts/setup.")
        }
        self.authentication = authentication
        let directory = try TemporaryDirectory("boxstack-registry")
        self.directory = directory
        try FileManager.default.makeDirectory(directory.file("storage"))
        var authSection = ""
        var tokenServer: Process?
        switch authentication {
        case .none:
            break
        case .basic(let username, let password):
            let line = try Subprocess.run(["htpasswd", "-Bbn", username, password]).check().output
            try Data(line.utf8).write(to: URL(fileURLWithPath: directory.file("htpasswd")))
            authSection = """
                auth:
                  htpasswd:
                    realm: boxstack-test
                    path: \(directory.file("htpasswd"))

                """
        case .token(let username, let password):
            try Subprocess.run([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=boxstack-token",
                "-keyout", directory.file("token.key"), "-out", directory.file("token.crt"),
            ]).check()
            let tokenPort = try freeLoopbackPort()
            let server = try Self.launch(
                "python3",
                [
                    repositoryRoot + "/Tests/Support/registry_token_server.py", "--port", String(tokenPort),
                    "--key", directory.file("token.key"), "--cert", directory.file("token.crt"),
                    "--issuer", "boxstack-test-issuer", "--service", "boxstack-test", "--user", username,
                    "--password", password,
                ], log: directory.file("token.log"))
            tokenServer = server
            guard Self.waitUntilListening(port: tokenPort, process: server) else {
                if server.isRunning { kill(server.processIdentifier, SIGKILL) }
                let log = (try? String(contentsOfFile: directory.file("token.log"), encoding: .utf8)) ?? ""
                throw BoxstackError(.processFailed, "the registry token server did not start on 127.0.0.1.", details: log)
            }
            authSection = """
                auth:
                  token:
                    realm: http://127.0.0.1:\(tokenPort)/token
                    service: boxstack-test
                    issuer: boxstack-test-issuer
                    rootcertbundle: \(directory.file("token.crt"))

                """
        }
        self.tokenServer = tokenServer
        // A port picked by freeLoopbackPort() can be taken before the registry binds it; try a few.
        var lastLog = ""
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let config = """
                version: 0.1
                log:
                  level: info
                  accesslog:
                    disabled: true
                storage:
                  filesystem:
                    rootdirectory: \(directory.file("storage"))
                  delete:
                    enabled: true
                http:
                  addr: 127.0.0.1:\(port)
                \(authSection)
                """
            try Data(config.utf8).write(to: URL(fileURLWithPath: directory.file("config.yml")))
            let process = try Self.launch(executable, ["serve", directory.file("config.yml")], log: directory.file("registry.log"))
            if Self.waitUntilListening(port: port, process: process) {
                self.port = port
                self.process = process
                return
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            lastLog = (try? String(contentsOfFile: directory.file("registry.log"), encoding: .utf8)) ?? ""
        }
        if let tokenServer, tokenServer.isRunning {
            kill(tokenServer.processIdentifier, SIGKILL)
            tokenServer.waitUntilExit()
        }
        throw BoxstackError(.processFailed, "docker-registry did not start on 127.0.0.1.", details: lastLog)
    }

    /// The file holding blob `digest` in the filesystem driver's layout.
    public func blobDataPath(_ digest: ContentDigest) -> String {
        "\(storageDirectory)/docker/registry/v2/blobs/\(digest.algorithm)/\(digest.hex.prefix(2))/\(digest.hex)/data"
    }

    /// Stops the registry and its token server (idempotent).
    public func stop() {
        for running in [process, tokenServer].compactMap({ $0 }) where running.isRunning {
            // SIGKILL: a child inherits the test runner's blocked signals, so SIGTERM may never arrive.
            kill(running.processIdentifier, SIGKILL)
            running.waitUntilExit()
        }
    }

    deinit { stop() }

    /// Starts `executable` (a name on PATH or a path) with stdout and stderr appended to `log`.
    private static func launch(_ executable: String, _ arguments: [String], log: String) throws -> Process {
        guard let path = Subprocess.which(executable) else {
            throw BoxstackError(.notFound, "\(executable) is not installed; run Scripts/setup.")
        }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let logHandle = FileHandle(forWritingAtPath: log) else {
            throw BoxstackError(.permission, "cannot write \(log).")
        }
        defer { try? logHandle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    private static func waitUntilListening(port: Int, process: Process) -> Bool {
        // Generous: the registry on a loaded 2-core machine; a dead one ends the wait at once.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            guard process.isRunning else { return false }
            if canConnect(port: port) { return true }
            usleep(50_000)
        }
        return false
    }

    private static func canConnect(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }
}
