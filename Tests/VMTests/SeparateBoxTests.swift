import Boxed
import BoxstackCore
import Foundation
import Guest
import Machine
import Sharing
import TestSupport
import Testing

/// Checks that need boxes of their own: the other sharing backends, parallel runs, aarch64.
@Suite(.serialized) struct SeparateBoxTests {
    /// Two boxes at once, one sharing over sshfs and one over virtiofs: each gets its own name, port,
    /// keys and run directory, and each share works both ways with host files owned by the user.
    @Test func twoRunsInParallelWithSSHFSAndVirtiofs() async throws {
        let workspace = try TemporaryDirectory("parallel")
        async let sshfs = Self.checkShare(.sshfs, workspace: workspace)
        async let virtiofs = Self.checkShare(.virtiofs, workspace: workspace)
        let (first, second) = try await (sshfs, virtiofs)
        #expect(first.domain != second.domain)
        #expect(first.port != second.port)
        #expect(first.runDirectory != second.runDirectory)
        #expect(!FileManager.default.fileExists(atPath: first.runDirectory))
        #expect(!FileManager.default.fileExists(atPath: second.runDirectory))
    }

    struct RunIdentity: Sendable {
        var domain: String
        var port: Int
        var runDirectory: String
    }

    static func checkShare(_ kind: ShareKind, workspace: TemporaryDirectory) async throws -> RunIdentity {
        let hostDirectory = workspace.file(kind.rawValue)
        try FileManager.default.createDirectory(atPath: hostDirectory, withIntermediateDirectories: true)
        try Data("to the guest\n".utf8).write(to: URL(fileURLWithPath: hostDirectory + "/in.txt"))
        let options = TestBox.options(
            image: try TestBox.image(), workspace: workspace, sharing: kind,
            shares: [SharedPath(hostPath: hostDirectory, guestPath: "/mnt/shared")])
        let session = try await BoxSession.start(options)
        defer { session.shutdown() }
        let agent = try #require(session.agent)
        let read = try await agent.collect(["cat", "/mnt/shared/in.txt"])
        #expect(read.stdout == "to the guest\n", "\(kind): \(read.stderr)")
        let write = try await agent.collect(["sh", "-c", "echo from \(kind.rawValue) > /mnt/shared/out.txt"])
        #expect(write.status.isSuccess, "\(kind): \(write.stderr)")
        let written = hostDirectory + "/out.txt"
        #expect((try? String(contentsOfFile: written, encoding: .utf8)) == "from \(kind.rawValue)\n")
        let owner = (try FileManager.default.attributesOfItem(atPath: written)[.ownerAccountID] as? NSNumber)?.uint32Value
        #expect(owner == getuid(), "\(kind): the file the guest wrote must be the user's on the host")
        return RunIdentity(
            domain: session.runDirectory.domainName, port: try #require(session.domain?.sshPort),
            runDirectory: session.runDirectory.path)
    }

    /// An aarch64 box boots on this x86_64 host under TCG, its agent answers, and real KIWI in it
    /// turns a small arm64 root (the box's own dash and its libraries, with its own image/config.xml)
    /// into an image whose binaries are aarch64 ELF files.
    @Test func aarch64BoxBootsAndBuildsAnArm64Image() async throws {
        let workspace = try TemporaryDirectory("aarch64")
        let options = TestBox.options(image: try TestBox.image(arch: "aarch64"), workspace: workspace, timeout: .seconds(600))
        let session = try await BoxSession.start(options)
        defer { session.shutdown() }
        #expect(session.accelerator.accelerator == .tcg)
        let hello = try #require(session.hello)
        #expect(hello.architecture == "aarch64")
        #expect(hello.agentVersion == GuestAgent.protocolVersion)
        let agent = try #require(session.agent)
        let uname = try await agent.collect(["uname", "-m"])
        #expect(uname.stdout == "aarch64\n")

        let script = #"""
            set -e
            root=/var/tmp/arm-root out=/var/tmp/arm-out
            rm -rf "$root" "$out"
            mkdir -p "$root/bin" "$root/etc" "$root/image" "$root/usr/share/doc" "$root/var/lib/dpkg" "$root/tmp"
            cp /bin/dash "$root/bin/sh"
            for lib in $(ldd /bin/dash | grep -o '/[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
            : > "$root/var/lib/dpkg/status"
            echo tiny > "$root/etc/hostname"
            cat > "$root/image/config.xml" <<'EOF'
            <?xml version="1.0" encoding="utf-8"?>
            <image schemaversion="7.5" name="tiny-arm">
              <description type="system"><author>boxstack tests</author><contact>tests@example.org</contact>
                <specification>A tiny arm64 root for kiwi-ng system create</specification></description>
              <preferences><version>1.0.0</version><packagemanager>apt</packagemanager><type image="tbz"/></preferences>
              <repository type="apt-deb"><source path="http://deb.debian.org/debian"/></repository>
              <packages type="image"><package name="dash"/></packages>
              <packages type="bootstrap"><package name="dash"/></packages>
            </image>
            EOF
            kiwi-ng system create --root "$root" --target-dir "$out" >"$out.log" 2>&1 || { tail -30 "$out.log"; exit 1; }
            tar -xJOf "$out"/tiny-arm.aarch64-1.0.0.tar.xz --wildcards '*bin/sh' | od -An -tx1 -j18 -N2
            """#
        let built = try await agent.collect(["sh", "-c", script])
        #expect(built.status == .terminated(code: 0), "\(built.stdout)\(built.stderr)")
        // e_machine 0x00b7 is EM_AARCH64.
        #expect(built.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "b7 00", "\(built.stdout)")
    }
}
