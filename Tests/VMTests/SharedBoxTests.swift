import Boxed
import BoxstackCore
import Foundation
import Guest
import Machine
import Sharing
import TestSupport
import Testing

/// Checks that share one booted box.
@Suite(.serialized) struct SharedBoxTests {
    @Test func agentAnswersAndRelaysOutputAndExitStatus() async throws {
        let (session, _) = try await SharedBox.shared.session()
        let agent = try #require(session.agent)
        let hello = try agent.hello()
        #expect(hello.agentVersion == GuestAgent.protocolVersion)
        #expect(hello.architecture == "x86_64")
        #expect(hello.kiwiVersion?.hasPrefix("9.") == true)
        let result = try await agent.collect(["sh", "-c", "echo out; echo err >&2; exit 7"])
        #expect(result.status == .terminated(code: 7))
        #expect(result.stdout == "out\n")
        #expect(result.stderr == "err\n")
        let domains = try session.connection.activeDomainNames()
        #expect(domains.contains(try #require(session.domain?.name)))
    }

    @Test func ninePShareWorksBothWaysAndHostFilesAreTheUsers() async throws {
        let (session, hostDirectory) = try await SharedBox.shared.session()
        let agent = try #require(session.agent)
        try Data("from the host\n".utf8).write(to: URL(fileURLWithPath: hostDirectory + "/to-guest.txt"))
        let read = try await agent.collect(["cat", "/mnt/host/to-guest.txt"])
        #expect(read.stdout == "from the host\n")
        let write = try await agent.collect(["sh", "-c", "echo from the guest > /mnt/host/from-guest.txt"])
        #expect(write.status.isSuccess)
        let attributes = try FileManager.default.attributesOfItem(atPath: hostDirectory + "/from-guest.txt")
        #expect((attributes[.ownerAccountID] as? NSNumber)?.uint32Value == getuid())
        #expect(try String(contentsOfFile: hostDirectory + "/from-guest.txt", encoding: .utf8) == "from the guest\n")
    }

    @Test func aShareThatDoesNotExistFailsToMountWithAClearError() async throws {
        let (session, _) = try await SharedBox.shared.session()
        let agent = try #require(session.agent)
        #expect {
            try agent.mount9p(tag: "no-such-tag", at: "/mnt/nothing")
        } throws: { error in
            (error as? BoxstackError)?.code == .guestFailed
        }
    }

    @Test func aMissingOrWrongAgentIsNamed() async throws {
        let (session, _) = try await SharedBox.shared.session()
        let agent = try #require(session.agent)
        let missing = GuestAgent(session: agent.session, agentCommand: ["/nonexistent/boxstack-agent"])
        #expect { try missing.hello() } throws: { "\($0)".contains("agent") }
        let fake = try await agent.collect([
            "sh", "-c", "printf '#!/bin/sh\\necho agent-version=99\\necho arch=x86_64\\n' > /tmp/old-agent; chmod +x /tmp/old-agent",
        ])
        #expect(fake.status.isSuccess)
        let wrong = GuestAgent(session: agent.session, agentCommand: ["/tmp/old-agent"])
        #expect { try wrong.hello() } throws: { error in
            let text = "\(error)"
            return text.contains("99") && text.contains("\(GuestAgent.protocolVersion)")
        }
    }

    @Test func kiwiFailureExitCodeIsRelayed() async throws {
        let (session, _) = try await SharedBox.shared.session()
        let agent = try #require(session.agent)
        let result = try await agent.collect([
            "kiwi-ng", "system", "build", "--description", "/nonexistent", "--target-dir", "/tmp/nothing",
        ])
        #expect(!result.status.isSuccess)
        #expect(result.status != .terminated(code: 127))
    }
}
