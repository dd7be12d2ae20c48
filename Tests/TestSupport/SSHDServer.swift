import BoxstackCore
import Foundation

/// A real OpenSSH server on 127.0.0.1 for tests, with its own host key and authorized_keys file.
///
/// It runs as the current user (root or not) and lets only that user log in, by key. Tests log in
/// as `user`; the remote commands then run on this host in the user's login shell.
public final class SSHDServer: @unchecked Sendable {
    public let port: Int
    /// The one user allowed to log in: the user running the tests.
    public let user: String
    /// The server's host key as an OpenSSH public key line, for pinning.
    public let hostPublicKey: String
    public let directory: TemporaryDirectory
    public var logPath: String { directory.file("sshd.log") }

    private let process: ChildProcess

    /// Starts sshd. `hostKey` is a private key file and its public line; without it a fresh
    /// ed25519 key is made with ssh-keygen. `port` defaults to a free loopback port.
    public init(authorizedKeys: [String], hostKey: (privateKeyPath: String, publicKey: String)? = nil, port: Int? = nil) throws {
        directory = try TemporaryDirectory("sshd")
        user = try Subprocess.run(["id", "-un"]).check().output.trimmingCharacters(in: .whitespacesAndNewlines)

        let hostKeyPath: String
        if let hostKey {
            hostKeyPath = hostKey.privateKeyPath
            hostPublicKey = hostKey.publicKey
        } else {
            hostKeyPath = directory.file("ssh_host_ed25519_key")
            try Subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshd-fixture", "-f", hostKeyPath]).check()
            hostPublicKey = try String(contentsOfFile: hostKeyPath + ".pub", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let authorizedKeysPath = directory.file("authorized_keys")
        try Data(authorizedKeys.map { $0 + "\n" }.joined().utf8).writeAtomically(to: authorizedKeysPath, mode: 0o600)

        if getuid() == 0 {
            // sshd running as root insists on its privilege separation directory.
            try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        }
        self.port = try port ?? freeLoopbackPort()
        let config = """
            ListenAddress 127.0.0.1:\(self.port)
            HostKey \(hostKeyPath)
            AuthorizedKeysFile \(authorizedKeysPath)
            AllowUsers \(user)
            PermitRootLogin prohibit-password
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            StrictModes no
            PidFile none
            UsePAM no
            UseDNS no
            PrintMotd no
            X11Forwarding no
            MaxStartups 100
            MaxSessions 100
            LogLevel VERBOSE
            Subsystem sftp /usr/lib/openssh/sftp-server

            """
        let configPath = directory.file("sshd_config")
        try Data(config.utf8).writeAtomically(to: configPath, mode: 0o600)

        // Not Foundation's Process: sshd closes the descriptor Process watches (see ChildProcess).
        process = try Self.spawn(
            // sshd re-executes itself for every connection and needs its absolute path for that.
            ["/usr/sbin/sshd", "-D", "-e", "-f", configPath], log: directory.file("sshd.log"))
        try waitUntilListening()
    }

    deinit { stop() }

    public var processIdentifier: Int32 { process.pid }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Stops the listening sshd; sessions already open end with their connections.
    public func stop() {
        if process.status == nil { kill(process.pid, SIGTERM) }
        process.wait()
    }

    private static func spawn(_ arguments: [String], log: String) throws -> ChildProcess {
        let logDescriptor = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let nullDescriptor = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(logDescriptor)
            close(nullDescriptor)
        }
        guard logDescriptor >= 0, nullDescriptor >= 0 else {
            throw BoxstackError(.internalError, "Cannot open \(log) or /dev/null for sshd.")
        }
        return try ChildProcess(arguments, standardInput: nullDescriptor, standardOutput: nullDescriptor, standardError: logDescriptor)
    }

    /// Every process below the listening sshd (per-connection sshd processes and their commands).
    public func descendantProcesses() -> [Int32] {
        var found: [Int32] = []
        var frontier = [process.pid]
        while let parent = frontier.popLast() {
            let children = (try? Subprocess.run(["pgrep", "-P", String(parent)]).output) ?? ""
            let pids = children.split(separator: "\n").compactMap { Int32($0) }
            found += pids
            frontier += pids
        }
        return found
    }

    private func waitUntilListening() throws {
        // Generous: sshd on a loaded 2-core machine; a dead sshd ends the wait at once.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if log.contains("Server listening on") { return }
            if process.status != nil { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        stop()
        throw BoxstackError(.processFailed, "sshd did not start listening on 127.0.0.1:\(port).", details: log)
    }
}
