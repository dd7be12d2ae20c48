import Boxed
import BoxstackCore
import Foundation
import Guest
import Machine
import TestSupport
import Testing

/// Warm starts (Docs/warm-boxes.md) on the real box: each restored box is its run's own, several start
/// at once, and a bad image falls back to a cold boot. These use the test cache, whose warm images
/// outlive the test run, like a user's.
@Suite(.serialized) struct WarmBoxTests {
    /// What makes a box its run's own, read through its agent.
    struct Identity: Equatable {
        var hostname: String
        var machineID: String
        var random: String
        var clock: Int
        var hostKey: String
        var authorizedKeys: String
    }

    static func identity(of session: BoxSession) async throws -> Identity {
        let agent = try #require(session.agent)
        let script = [
            "hostname", "cat /etc/machine-id", "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'", "echo", "date +%s",
            "cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub", "cut -d' ' -f2 /root/.ssh/authorized_keys | paste -sd,",
        ].joined(separator: "; ")
        let result = try await agent.collect(["sh", "-c", script])
        #expect(result.status.isSuccess, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 6, "\(result.stdout)")
        return Identity(
            hostname: lines[0], machineID: lines[1], random: lines[2], clock: Int(lines[3]) ?? 0, hostKey: lines[4], authorizedKeys: lines[5])
    }

    @Test func twoBoxesRestoredFromOneImageAreEachTheirRunsOwn() async throws {
        let workspace = try TemporaryDirectory("warm-identity")
        // A cache of its own: in the shared test cache, suites running alongside take slots, and the two
        // starts could restore different images.
        var options = TestBox.options(image: try TestBox.image(), workspace: workspace, privateCache: true)
        let notices = LockedBox<[String]>([])
        options.report = { line in notices.withValue { $0.append(line) } }
        var identities: [Identity] = []
        var domainNames: [String] = []
        for _ in 0..<2 {
            let startedAt = Int(Date().timeIntervalSince1970)
            let session = try await BoxSession.start(options)
            defer { session.shutdown() }
            #expect(session.startedWarm, "\(notices.value)")
            let identity = try await Self.identity(of: session)
            #expect(identity.hostname == session.runDirectory.domainName)
            #expect(identity.machineID.wholeMatch(of: /[0-9a-f]{32}/) != nil)
            // Set from the host's time during this start, not the image's clock from its save: bounded by
            // events, not by a tolerance (the host's time reaches a busy guest seconds late).
            let readAt = Int(Date().timeIntervalSince1970)
            #expect((startedAt - 1)...(readAt + 1) ~= identity.clock, "the guest clock is set from the host: \(identity.clock), started \(startedAt)")
            #expect(identity.hostKey == session.hostKey.publicKey.split(separator: " ")[1].description)
            // Only the run's own key gets in: the image's login key was replaced.
            let runKey = try String(contentsOfFile: try #require(session.endpoint).privateKeyPath + ".pub", encoding: .utf8)
            #expect(identity.authorizedKeys == runKey.split(separator: " ")[1].description)
            domainNames.append(try #require(session.domain).name)
            identities.append(identity)
        }
        try #require(identities.count == 2)
        #expect(domainNames[0] == domainNames[1], "both runs restored the same image")
        #expect(identities[0].hostname != identities[1].hostname)
        #expect(identities[0].machineID != identities[1].machineID)
        #expect(identities[0].random != identities[1].random)
        #expect(identities[0].hostKey != identities[1].hostKey)
    }

    @Test func fourWarmRunsOfOneShapeStartAtOnce() async throws {
        let workspace = try TemporaryDirectory("warm-four")
        let options = TestBox.options(image: try TestBox.image(), workspace: workspace)
        let sessions = try await withThrowingTaskGroup(of: BoxSession.self) { group in
            for _ in 0..<4 { group.addTask { try await BoxSession.start(options) } }
            var sessions: [BoxSession] = []
            do {
                for try await session in group { sessions.append(session) }
            } catch {
                for session in sessions { session.shutdown() }
                throw error
            }
            return sessions
        }
        defer { for session in sessions { session.shutdown() } }
        #expect(sessions.allSatisfy { $0.startedWarm })
        #expect(Set(sessions.compactMap { $0.domain?.name }).count == 4)
        for session in sessions {
            let hello = try #require(try session.agent?.hello())
            #expect(hello.agentVersion == GuestAgent.protocolVersion)
        }
    }

    @Test func aCorruptWarmImageIsDiscardedAndTheBoxBootsColdWithANotice() async throws {
        let workspace = try TemporaryDirectory("warm-corrupt")
        var options = TestBox.options(image: try TestBox.image(), workspace: workspace, privateCache: true)
        let first = try await BoxSession.start(options)
        first.shutdown()
        #expect(first.startedWarm)

        let state = URL(fileURLWithPath: try Self.onlySlotWithAnImage(cache: options.paths.cacheDirectory) + "/state")
        let saved = try Data(contentsOf: state)
        try saved.prefix(saved.count / 2).write(to: state)
        let notices = LockedBox<[String]>([])
        options.report = { line in notices.withValue { $0.append(line) } }
        let second = try await BoxSession.start(options)
        defer { second.shutdown() }
        #expect(!second.startedWarm)
        #expect(try second.agent?.hello() != nil)
        #expect(notices.value.contains { $0.contains("could not be used, so it was discarded and this box boots cold") }, "\(notices.value)")
        #expect(!FileManager.default.fileExists(atPath: state.path))
    }

    @Test func coldBootsCold() async throws {
        let workspace = try TemporaryDirectory("warm-cold")
        var options = TestBox.options(image: try TestBox.image(), workspace: workspace)
        options.warm = false
        let session = try await BoxSession.start(options)
        defer { session.shutdown() }
        #expect(!session.startedWarm)
        #expect(session.domain?.name == session.runDirectory.domainName)
    }

    /// The one slot that holds an image in a private cache.
    static func onlySlotWithAnImage(cache: String) throws -> String {
        let warm = cache + "/warm"
        let slots = try FileManager.default.contentsOfDirectory(atPath: warm).flatMap { shape in
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(warm)/\(shape)")) ?? []).map { "\(warm)/\(shape)/\($0)" }
        }
        let made = slots.filter { FileManager.default.fileExists(atPath: $0 + "/state") }
        try #require(made.count == 1, "\(slots)")
        return made[0]
    }
}
