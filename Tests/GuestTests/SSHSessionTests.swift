import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

@Suite("libssh session against a real sshd")
struct SSHSessionTests {
    @Test("connects when the server's host key is the pinned one")
    func connectsWithPinnedHostKey() throws {
        let host = try SSHTestHost()
        let session = try host.connect()
        let result = try session.run("id -un")
        #expect(result.status == .terminated(code: 0))
        #expect(result.output == host.server.user + "\n")
    }

    @Test("refuses a server whose host key is not the pinned one, naming both fingerprints")
    func rejectsWrongHostKey() throws {
        let host = try SSHTestHost()
        let other = try SSHKeyPair.generateEd25519(privateKeyPath: host.directory.file("other_host_key"))
        var endpoint = host.endpoint
        endpoint.hostKey = other.publicKey
        let offered = try SSHKeyPair.fingerprint(ofPublicKey: host.server.hostPublicKey)

        let error = try #require(throws: BoxstackError.self) { try SSHSession.connect(to: endpoint) }
        #expect(error.code == .permission)
        #expect(error.message.contains("offered host key \(offered)"))
        #expect(error.message.contains("pinned host key is \(other.fingerprint)"))

        // Waiting for a booting box does not retry a wrong key until the deadline: it fails at once.
        let started = ContinuousClock.now
        #expect(throws: BoxstackError.self) {
            try SSHSession.waitUntilReachable(endpoint, deadline: .now + .seconds(300))
        }
        #expect(ContinuousClock.now - started < .seconds(150))
    }

    @Test("a login key the server does not accept gives a clear error")
    func rejectsUnknownClientKey() throws {
        let host = try SSHTestHost()
        let stranger = try SSHKeyPair.generateEd25519(privateKeyPath: host.directory.file("stranger"))
        var endpoint = host.endpoint
        endpoint.privateKeyPath = stranger.privateKeyPath
        let error = try #require(throws: BoxstackError.self) { try SSHSession.connect(to: endpoint) }
        #expect(error.code == .permission)
        #expect(error.message.contains("refused the login key"))
    }

    @Test("stdout, stderr and exit codes 0, 3 and 255 come back exactly")
    func exitCodesAndStreams() throws {
        let session = try SSHTestHost().connect()
        let hello = try session.run("echo hello; echo oops >&2")
        #expect(hello.status == .terminated(code: 0))
        #expect(hello.output == "hello\n")
        #expect(hello.errorOutput == "oops\n")
        #expect(try session.run("exit 3").status == .terminated(code: 3))
        #expect(try session.run("exit 255").status == .terminated(code: 255))
        #expect(try session.run("true").status.isSuccess)
    }

    @Test("a command killed by a signal is reported as that signal, not an exit code")
    func signalledCommand() throws {
        let session = try SSHTestHost().connect()
        #expect(try session.run("kill -TERM $$").status == .signalled(signal: SIGTERM))
        #expect(try session.run("kill -KILL $$").status == .signalled(signal: SIGKILL))
    }

    @Test("output streams while the command runs instead of arriving at the end")
    func streamsOutput() throws {
        let session = try SSHTestHost().connect()
        let clock = ContinuousClock()
        let start = clock.now
        var arrivals: [(Duration, String)] = []
        let status = try session.execute(
            "echo first; sleep 1; echo second",
            onStdout: { arrivals.append((clock.now - start, String(decoding: $0, as: UTF8.self))) },
            onStderr: { _ in })
        let finished = clock.now - start
        #expect(status.isSuccess)
        let first = try #require(arrivals.first)
        #expect(first.1 == "first\n")
        #expect(finished - first.0 > .milliseconds(700))
        #expect(arrivals.map(\.1).joined() == "first\nsecond\n")
    }

    @Test("20 MB of output arrive intact")
    func largeOutput() throws {
        let host = try SSHTestHost()
        let file = host.directory.file("big.bin")
        try Subprocess.run(["head", "-c", "20000000", "/dev/urandom"]).standardOutput.write(to: URL(fileURLWithPath: file))
        let session = try host.connect()
        var received = Data()
        var chunks = 0
        let status = try session.execute(
            ShellQuote.join(["cat", file]),
            onStdout: {
                received.append($0)
                chunks += 1
            }, onStderr: { _ in })
        #expect(status.isSuccess)
        #expect(received.count == 20_000_000)
        #expect(ContentDigest.of(received) == (try ContentDigest.ofFile(file).digest))
        #expect(chunks > 1)
    }

    @Test("standard input is piped in from data, a file and a local process")
    func standardInput() throws {
        let host = try SSHTestHost()
        let session = try host.connect()

        let payload = Data((0..<5_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
        let hashed = try session.run("sha256sum", input: .data(payload))
        #expect(hashed.status.isSuccess)
        #expect(hashed.output.hasPrefix(ContentDigest.of(payload).hex))

        let source = host.directory.file("input.bin")
        try payload.write(to: URL(fileURLWithPath: source))
        let copy = host.directory.file("copy.bin")
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: source))
        defer { try? handle.close() }
        #expect(try session.run(ShellQuote.join(["sh", "-c", "cat > \"$1\"", "sh", copy]), input: .fileHandle(handle)).status.isSuccess)
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == payload)

        let producer = Process()
        producer.executableURL = URL(fileURLWithPath: "/usr/bin/seq")
        producer.arguments = ["1", "200000"]
        let pipe = Pipe()
        producer.standardOutput = pipe
        try producer.run()
        let counted = try session.run("wc -l", input: .fileHandle(pipe.fileHandleForReading))
        producer.waitUntilExit()
        #expect(counted.output.trimmingCharacters(in: .whitespacesAndNewlines) == "200000")

        // A command that reads nothing still ends: its input is closed at once.
        #expect(try session.run("cat").output == "")
    }

    @Test("keepalives during a long quiet command do not disturb it")
    func keepaliveDuringLongCommand() throws {
        let options = SSHSessionOptions(keepaliveInterval: .milliseconds(500), deadPeerTimeout: .seconds(10))
        let session = try SSHTestHost().connect(options)
        let result = try session.run("sleep 3; echo done")
        #expect(result.status.isSuccess)
        #expect(result.output == "done\n")
        #expect(session.keepalivesSent >= 2)
        #expect(try session.run("echo again").output == "again\n")
    }

    @Test("a server that stops answering is detected within the dead-peer bound")
    func detectsDeadPeer() throws {
        let host = try SSHTestHost()
        let options = SSHSessionOptions(
            requestTimeout: .seconds(5), keepaliveInterval: .milliseconds(500), deadPeerTimeout: .seconds(3))
        let session = try host.connect(options)
        let frozen = LockedBox<[Int32]>([])
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 1)
            frozen.value = host.server.descendantProcesses()
            for pid in frozen.value { kill(pid, SIGSTOP) }
        }
        defer {
            for pid in frozen.value {
                kill(pid, SIGCONT)
                kill(pid, SIGTERM)
            }
        }
        let started = ContinuousClock.now
        let error = try #require(throws: BoxstackError.self) { try session.run("sleep 300") }
        let elapsed = ContinuousClock.now - started
        #expect(error.message.contains("sent nothing"))
        #expect(elapsed > .seconds(3))
        #expect(elapsed < .seconds(150))
    }

    @Test("waiting for a port where nothing listens ends at the deadline with a clear error")
    func unreachableTimesOut() throws {
        let host = try SSHTestHost()
        var endpoint = host.endpoint
        endpoint.port = try freeLoopbackPort()
        let started = ContinuousClock.now
        let error = try #require(throws: BoxstackError.self) {
            try SSHSession.waitUntilReachable(endpoint, deadline: .now + .seconds(2))
        }
        let elapsed = ContinuousClock.now - started
        #expect(error.code == .timeout)
        #expect(error.message.contains("did not let boxstack in within"))
        #expect(error.message.contains("refused"))
        #expect(elapsed >= .seconds(2))
        #expect(elapsed < .seconds(60))
    }

    @Test("a port that accepts but never speaks is abandoned at the deadline")
    func silentPortTimesOut() throws {
        let host = try SSHTestHost()
        var endpoint = host.endpoint
        endpoint.port = try freeLoopbackPort()
        let impostor = try startImpostor(port: endpoint.port, mode: "silent")
        defer { stopProcess(impostor) }
        let options = SSHSessionOptions(bannerTimeout: .milliseconds(300))
        let started = ContinuousClock.now
        let error = try #require(throws: BoxstackError.self) {
            try SSHSession.waitUntilReachable(endpoint, deadline: .now + .seconds(2), options: options)
        }
        #expect(error.code == .timeout)
        #expect(error.message.contains("silent"))
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    /// QEMU's user-mode network keeps retrying the SYN of a connection made before the guest listens,
    /// with a growing backoff; a fresh connection reaches a just-started sshd at once.
    @Test("a connection made before sshd started does not hold the login back")
    func freshConnectionsReachALateServer() throws {
        let host = try SSHTestHost()
        var endpoint = host.endpoint
        endpoint.port = try freeLoopbackPort()
        let impostor = try startImpostor(port: endpoint.port, mode: "late", "2", String(host.endpoint.port))
        defer { stopProcess(impostor) }
        let started = ContinuousClock.now
        let session = try SSHSession.waitUntilReachable(
            endpoint, deadline: .now + .seconds(120), options: SSHSessionOptions(bannerTimeout: .seconds(60)))
        defer { session.close() }
        // Without fresh connections the first, silent one would hold the wait for its 60 s banner timeout.
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(try session.run("echo up").output == "up\n")
    }

    @Test("connections reset while the box boots are retried until sshd answers")
    func retriesResetsUntilServerIsUp() async throws {
        let port = try freeLoopbackPort()
        let directory = try TemporaryDirectory("guest-test")
        let clientKey = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("client"))
        let hostKey = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("host"))
        let endpoint = SSHEndpoint(
            port: port, user: try Subprocess.run(["id", "-un"]).output.trimmingCharacters(in: .whitespacesAndNewlines),
            privateKeyPath: clientKey.privateKeyPath, hostKey: hostKey.publicKey)

        let impostor = try startImpostor(port: port, mode: "reset")
        let attempts = LockedBox(0)
        let waiting = Task {
            try await SSHSession.waitUntilReachable(
                endpoint, deadline: .now + .seconds(300), whileWaiting: { attempts.withValue { $0 += 1 } })
        }
        try await Task.sleep(for: .milliseconds(1500))
        stopProcess(impostor)
        let server = try SSHDServer(
            authorizedKeys: [clientKey.publicKey], hostKey: (hostKey.privateKeyPath, hostKey.publicKey), port: port)
        let session = try await waiting.value
        #expect(attempts.value >= 2)
        #expect(try await session.run("echo up").output == "up\n")
        server.stop()
    }

    /// Starts a command that prints "started" and then sleeps for minutes, and returns once "started" has
    /// arrived: waiting for the output itself holds however loaded the machine is.
    private func startSleepingCommand(on session: SSHSession) async throws -> Task<BoxstackCore.ExitStatus, any Error> {
        let output = LockedBox("")
        let command = Task {
            try await session.execute(
                "echo started; exec sleep 120", onStdout: { chunk in output.withValue { $0 += String(decoding: chunk, as: UTF8.self) } },
                onStderr: { _ in })
        }
        while output.value.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(output.value == "started\n")
        return command
    }

    /// A teardown (on Ctrl-C) closes the session while a build still runs on another thread: closing
    /// must end that command, not wait for it.
    @Test("closing a session ends the command running on another thread")
    func closeEndsARunningCommand() async throws {
        let host = try SSHTestHost()
        let session = try host.connect()
        let command = try await startSleepingCommand(on: session)
        let closing = ContinuousClock.now
        try await runOnOwnThread { session.close() }
        let error = await #expect(throws: BoxstackError.self) { try await command.value }
        #expect(error?.code == .interrupted)
        #expect(ContinuousClock.now - closing < .seconds(60))
        await #expect(throws: BoxstackError.self) { try await session.run("true") }
    }

    @Test("cancelling an async command returns at once and leaves the session usable")
    func cancellationEndsCommand() async throws {
        let host = try SSHTestHost()
        let session = try host.connect()
        let task = try await startSleepingCommand(on: session)
        let cancelled = ContinuousClock.now
        task.cancel()
        let error = await #expect(throws: BoxstackError.self) { try await task.value }
        #expect(error?.code == .interrupted)
        // Well before the command would end by itself: the cancel, not the command, ended it.
        #expect(ContinuousClock.now - cancelled < .seconds(30))
        #expect(try await session.run("echo still usable").output == "still usable\n")
    }

    @Test("several sessions run commands side by side")
    func parallelSessions() async throws {
        let host = try SSHTestHost()
        let checkIns = try TemporaryDirectory("ssh-check-ins")
        // Each command checks in, then waits for the other two: commands that ran one after the other
        // would never see all three. Events, not the clock, so a loaded machine's slow logins cannot fail it.
        let script = """
            touch \(checkIns.path)/$$; for attempt in $(seq 1200); do \
            [ $(ls \(checkIns.path) | wc -l) -ge 3 ] && { echo together; exit 0; }; sleep 0.1; done; echo alone
            """
        let answers = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let session = try await runOnOwnThread { try host.connect() }
                    return try await session.run(script).output
                }
            }
            var answers: [String] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        #expect(answers == ["together\n", "together\n", "together\n"])
    }
}
