import BoxstackCore
import Foundation
import Guest
import TestSupport

/// A real sshd on 127.0.0.1 plus a fresh client key that it accepts, for one test.
struct SSHTestHost {
    let directory: TemporaryDirectory
    let clientKey: SSHKeyPair
    let server: SSHDServer
    let endpoint: SSHEndpoint

    init(port: Int? = nil) throws {
        directory = try TemporaryDirectory("guest-test")
        clientKey = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("client_ed25519"))
        server = try SSHDServer(authorizedKeys: [clientKey.publicKey], port: port)
        endpoint = SSHEndpoint(
            port: server.port, user: server.user, privateKeyPath: clientKey.privateKeyPath, hostKey: server.hostPublicKey)
    }

    func connect(_ options: SSHSessionOptions = SSHSessionOptions()) throws -> SSHSession {
        try SSHSession.connect(to: endpoint, options: options)
    }
}

/// Starts a Tests/Support/tcp_impostor.py on `port` in `mode` ("reset", "silent", or "late" with its
/// arguments) and waits until it listens.
func startImpostor(port: Int, mode: String, _ arguments: String...) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = [repositoryRoot + "/Tests/Support/tcp_impostor.py", String(port), mode] + arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    _ = output.fileHandleForReading.availableData  // "ready"
    return process
}

/// SIGKILL, because a child started from a test's worker thread inherits that thread's blocked signals.
func stopProcess(_ process: Process) {
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The error's text, for checking the message a user would read.
func describe(_ error: any Error) -> String { "\(error)" }
