import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

@Suite("sshfs bridge: an exec channel joined to a local sftp-server")
struct SFTPBridgeTests {
    @Test("an SFTP client on the remote side lists and writes the host directory through sftp-server")
    func bridgesSFTP() throws {
        let host = try SSHTestHost()
        let shared = host.directory.file("shared")
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        try Data("from the host".utf8).write(to: URL(fileURLWithPath: shared + "/from-host.txt"))

        let probe = ShellQuote.join(["python3", repositoryRoot + "/Tests/Support/sftp_probe.py", shared])
        let bridge = SFTPBridge(endpoint: host.endpoint, hostDirectory: shared, remoteCommand: probe)
        try bridge.start()
        let status = try bridge.wait()
        #expect(status == .terminated(code: 0), "\(bridge.diagnostics)")
        #expect(bridge.diagnostics.contains("version: 3"))
        #expect(bridge.diagnostics.contains("name: from-host.txt"))
        #expect(try String(contentsOfFile: shared + "/from-guest.txt", encoding: .utf8) == "hello from the guest\n")
    }

    @Test("stop ends a bridge whose remote side never finishes")
    func stopEndsBridge() throws {
        let host = try SSHTestHost()
        let bridge = SFTPBridge(endpoint: host.endpoint, hostDirectory: host.directory.path, remoteCommand: "sleep 300")
        try bridge.start()
        Thread.sleep(forTimeInterval: 0.5)
        let started = ContinuousClock.now
        bridge.stop()
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(try bridge.wait() == .signalled(signal: SIGTERM))
    }

    @Test("a remote command that fails at once reports its status and error lines")
    func failingRemoteCommand() throws {
        let host = try SSHTestHost()
        let bridge = SFTPBridge(
            endpoint: host.endpoint, hostDirectory: host.directory.path,
            remoteCommand: "echo 'sshfs: bad mount point' >&2; exit 1")
        try bridge.start()
        #expect(try bridge.wait() == .terminated(code: 1))
        #expect(bridge.diagnostics.contains("sshfs: bad mount point"))
    }

    @Test("a bridge to an unreachable box fails to start with a clear error")
    func unreachable() throws {
        let host = try SSHTestHost()
        var endpoint = host.endpoint
        endpoint.port = try freeLoopbackPort()
        let bridge = SFTPBridge(endpoint: endpoint, hostDirectory: host.directory.path, remoteCommand: "true")
        #expect(throws: BoxstackError.self) { try bridge.start() }
        bridge.stop()
    }
}
