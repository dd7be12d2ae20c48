import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

/// The real agent script, run through a real sshd on this host.
@Suite("guest agent protocol against Boxes/agent/boxstack-agent")
struct GuestAgentTests {
    static let agentScript = repositoryRoot + "/Boxes/agent/boxstack-agent"

    func agent(_ host: SSHTestHost, command: [String] = ["sh", GuestAgentTests.agentScript]) throws -> GuestAgent {
        GuestAgent(session: try host.connect(), agentCommand: command)
    }

    @Test("hello reports the protocol version, the architecture and the KIWI version")
    func hello() throws {
        let host = try SSHTestHost()
        let hello = try agent(host).hello()
        #expect(hello.agentVersion == GuestAgent.protocolVersion)
        #expect(hello.architecture == hostArchitecture)
        // The agent reports "none" without KIWI, which the parser maps to nil; the test host has KIWI.
        let installed = try Subprocess.run(["kiwi-ng", "--version"]).output
        let version = try #require(hello.kiwiVersion)
        #expect(installed.contains(version), "agent says KIWI \(version), kiwi-ng says \(installed)")
    }

    @Test("an agent of another protocol version is refused, naming both versions")
    func versionMismatch() throws {
        let host = try SSHTestHost()
        let fake = host.directory.file("future-agent")
        let other = GuestAgent.protocolVersion + 1
        try Data("#!/bin/sh\necho agent-version=\(other)\necho arch=x86_64\necho kiwi-version=none\n".utf8).write(to: URL(fileURLWithPath: fake))
        let error = try #require(throws: BoxstackError.self) { try agent(host, command: ["sh", fake]).hello() }
        #expect(error.message.contains("protocol version \(other)"))
        #expect(error.message.contains("speaks version \(GuestAgent.protocolVersion)"))
    }

    @Test("a box without the agent gives a clear error")
    func missingAgent() throws {
        let host = try SSHTestHost()
        let error = try #require(throws: BoxstackError.self) {
            try agent(host, command: ["boxstack-agent-that-is-not-installed"]).hello()
        }
        #expect(error.message.contains("has no boxstack agent"))
    }

    @Test("hello output is parsed; a missing version line is an error")
    func parsesHello() throws {
        let parsed = try GuestAgent.parseHello("agent-version=1\narch=aarch64\nkiwi-version=9.24.56\n")
        #expect(parsed == GuestAgentHello(agentVersion: 1, architecture: "aarch64", kiwiVersion: "9.24.56"))
        #expect(try GuestAgent.parseHello("agent-version=1\narch=x86_64\nkiwi-version=none\n").kiwiVersion == nil)
        #expect(throws: BoxstackError.self) { try GuestAgent.parseHello("hello\n") }
    }

    @Test("run passes cwd, environment and argv exactly, streams output and returns the exit code")
    func runCommand() async throws {
        let host = try SSHTestHost()
        let workDirectory = host.directory.file("work dir")
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        let output = LockedBox(Data())
        let errors = LockedBox(Data())
        let status = try await agent(host).run(
            ["sh", "-c", "pwd; printf '%s|' \"$GREETING\" \"$@\"; echo; echo problem >&2; exit 7", "sh", "two words", "$x"],
            cwd: workDirectory, environment: ["GREETING": "hello 'there'"],
            onStdout: { chunk in output.withValue { $0.append(chunk) } }, onStderr: { chunk in errors.withValue { $0.append(chunk) } })
        #expect(status == .terminated(code: 7))
        #expect(String(decoding: output.value, as: UTF8.self) == "\((workDirectory as NSString).standardizingPath)\nhello 'there'|two words|$x|\n")
        #expect(String(decoding: errors.value, as: UTF8.self) == "problem\n")
    }

    @Test("a command killed by a signal reports 128 + the signal, as a shell does")
    func runSignalled() async throws {
        let host = try SSHTestHost()
        let status = try await agent(host).run(["sh", "-c", "kill -KILL $$"], onStdout: { _ in }, onStderr: { _ in })
        #expect(status == .terminated(code: 128 + SIGKILL))
    }

    @Test("cancelling a run ends the command in the guest, with everything it started")
    func cancelledRunEndsTheCommand() async throws {
        let host = try SSHTestHost()
        let pidFile = host.directory.file("pids")
        let agent = try agent(host)
        let run = Task {
            try await agent.run(
                ["sh", "-c", "sleep 300 & echo $$ $! > \(pidFile).part && mv \(pidFile).part \(pidFile); wait"],
                onStdout: { _ in }, onStderr: { _ in })
        }
        // Wait for the command to start: for its pid file, or for the run to end without one. The
        // deadline only guards against a hang; a loaded 2-core machine can take many seconds here.
        let started = LockedBox(false)
        let watcher = Task {
            _ = try? await run.value
            started.value = true
        }
        defer { watcher.cancel() }
        let deadline = ContinuousClock.now + .seconds(300)
        while !FileManager.default.fileExists(atPath: pidFile), !started.value, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(FileManager.default.fileExists(atPath: pidFile), "the command never started")
        let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: " ").compactMap {
            pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(pids.count == 2)
        run.cancel()
        await #expect(throws: BoxstackError.self) { try await run.value }
        // TERM at once, KILL after five seconds at the latest.
        let gone = ContinuousClock.now + .seconds(120)
        while pids.contains(where: { kill($0, 0) == 0 }), ContinuousClock.now < gone {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(!pids.contains { kill($0, 0) == 0 }, "still running: \(pids.filter { kill($0, 0) == 0 })")
    }

    @Test("tree-manifest lists every entry with type, mode, size and link target")
    func treeManifest() throws {
        let host = try SSHTestHost()
        let root = host.directory.file("root")
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        try Data("hello".utf8).write(to: URL(fileURLWithPath: root + "/etc/motd"))
        chmod(root + "/etc/motd", 0o640)
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "etc/motd")

        let manifest = try agent(host).treeManifest(root: root)
        let fields = manifest.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var entries: [String: (record: [String], target: String)] = [:]
        var index = 0
        while index + 1 < fields.count {
            let record = fields[index].split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if record.count == 7 { entries[record[6]] = (record, fields[index + 1]) }
            index += 2
        }
        #expect(Set(entries.keys) == ["etc", "etc/motd", "link"])
        let motd = try #require(entries["etc/motd"])
        #expect(motd.record[0] == "f")
        #expect(motd.record[1] == "640")
        #expect(motd.record[4] == "5")
        #expect(entries["etc"]?.record[0] == "d")
        #expect(entries["link"]?.record[0] == "l")
        #expect(entries["link"]?.target == "etc/motd")
    }

    @Test("tree-export writes the listed paths and tree-import restores them elsewhere")
    func treeExportImport() throws {
        let host = try SSHTestHost()
        let root = host.directory.file("root")
        try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
        try Data("kept".utf8).write(to: URL(fileURLWithPath: root + "/data/kept.txt"))
        try Data("skipped".utf8).write(to: URL(fileURLWithPath: root + "/data/skipped.txt"))
        let list = host.directory.file("list")
        try Data("data\0data/kept.txt\0".utf8).write(to: URL(fileURLWithPath: list))
        let archive = host.directory.file("export.tar")
        let guest = try agent(host)

        try guest.treeExport(root: root, listFile: list, outputFile: archive)
        let restored = host.directory.file("restored")
        try guest.treeImport(root: restored, tarFile: archive)
        #expect(try String(contentsOfFile: restored + "/data/kept.txt", encoding: .utf8) == "kept")
        #expect(!FileManager.default.fileExists(atPath: restored + "/data/skipped.txt"))
    }

    @Test("a failing mount names the share and the agent's reason")
    func mountFailure() throws {
        let host = try SSHTestHost()
        let error = try #require(throws: BoxstackError.self) {
            try agent(host).mount9p(tag: "no-such-tag", at: host.directory.file("mnt"), msize: 65536)
        }
        #expect(error.code == .guestFailed)
        #expect(error.message.contains("Mounting the 9p share no-such-tag"))
        #expect(error.message.contains("boxstack-agent:"))
    }

    @Test("verbs become one shell-quoted boxstack-agent command line")
    func commandLines() throws {
        let host = try SSHTestHost()
        let guest = GuestAgent(session: try host.connect())
        #expect(guest.commandLine("poweroff") == "boxstack-agent poweroff")
        #expect(guest.commandLine("mount", ["9p", "boxstack-seed", "/run/box stack"]) == "boxstack-agent mount 9p boxstack-seed '/run/box stack'")
        #expect(
            guest.sshfsMountCommand(hostDirectory: "/home/u/My Dir", guestDirectory: "/home/u/My Dir")
                == "boxstack-agent sshfs-mount '/home/u/My Dir' '/home/u/My Dir'")
    }
}
