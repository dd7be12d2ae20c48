import BoxstackCore
import Foundation
import Machine
import Sharing
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SharingTests {
    let shares = [SharedPath(hostPath: "/home/user/description"), SharedPath(hostPath: "/srv/target", guestPath: "/result")]

    @Test func ninePMountsEveryShareWithTheLargeMsize() {
        #expect(
            NinePShareBackend(shares: shares).guestMountSteps() == [
                .agent(arguments: ["mount", "9p", "boxstack-share0", "/home/user/description", "512000"]),
                .agent(arguments: ["mount", "9p", "boxstack-share1", "/result", "512000"]),
            ])
        #expect(
            NinePShareBackend(shares: shares, msize: 65536).guestMountSteps().first
                == .agent(arguments: ["mount", "9p", "boxstack-share0", "/home/user/description", "65536"]))
    }

    @Test func virtiofsAndSSHFSGuestSteps() {
        let virtiofs = VirtiofsShareBackend(shares: shares, socketsDirectory: "/run/x/sockets")
        #expect(
            virtiofs.guestMountSteps() == [
                .agent(arguments: ["mount", "virtiofs", "boxstack-share0", "/home/user/description"]),
                .agent(arguments: ["mount", "virtiofs", "boxstack-share1", "/result"]),
            ])
        #expect(
            SSHFSShareBackend(shares: shares).guestMountSteps() == [
                .sftpBridge(hostDirectory: "/home/user/description", guestDirectory: "/home/user/description"),
                .sftpBridge(hostDirectory: "/srv/target", guestDirectory: "/result"),
            ])
    }

    @Test func virtiofsWithoutSubordinateIDsFailsEarlySuggesting9p() throws {
        let directory = try TemporaryDirectory("subid")
        try Data("someoneelse:100000:65536\n".utf8).write(to: URL(fileURLWithPath: directory.file("subuid")))
        try Data("someoneelse:100000:65536\n".utf8).write(to: URL(fileURLWithPath: directory.file("subgid")))
        #expect {
            _ = try VirtiofsShareBackend.userNamespacePrefix(
                userID: 4242, subuidFile: directory.file("subuid"), subgidFile: directory.file("subgid"))
        } throws: { error in
            let text = "\(error)"
            return text.contains("virtiofs sharing needs subordinate ids") && text.hasSuffix("or use --9p-sharing.")
        }
    }

    @Test func virtiofsMapsTheUsersSubordinateIDsBehindGuestRoot() throws {
        let directory = try TemporaryDirectory("subid")
        try Data("4242:200000:100000\n".utf8).write(to: URL(fileURLWithPath: directory.file("subuid")))
        try Data("4242:300000:65536\n".utf8).write(to: URL(fileURLWithPath: directory.file("subgid")))
        let prefix = try VirtiofsShareBackend.userNamespacePrefix(
            userID: 4242, subuidFile: directory.file("subuid"), subgidFile: directory.file("subgid"))
        #expect(prefix == ["unshare", "--map-root-user", "--map-users=200000,1,65536", "--map-groups=300000,1,65536"])
        #expect(try VirtiofsShareBackend.userNamespacePrefix(userID: 0).isEmpty)
    }

    /// The real virtiofsd starts on the controller's socket and stops with the backend.
    @Test(.enabled(if: (try? VirtiofsShareBackend.findVirtiofsd()) != nil, "virtiofsd is not installed"))
    func virtiofsdServesTheSocketUntilStopped() throws {
        let directory = try TemporaryDirectory("virtiofs")
        try FileManager.default.makeDirectory(directory.file("share"))
        let backend = VirtiofsShareBackend(shares: [SharedPath(hostPath: directory.file("share"))], socketsDirectory: directory.file("sockets"))
        try backend.startHostSide()
        var spec = DomainSpec(
            name: "boxstack-test", architecture: .x86_64, accelerator: .tcg, kernel: nil, initrd: nil, disk: nil,
            consoleLog: directory.file("console.log"), network: nil)
        backend.configure(&spec)
        let socketPath = try #require(spec.vhostUserFilesystems.first?.socketPath)
        var status = stat()
        #expect(stat(socketPath, &status) == 0 && (status.st_mode & S_IFMT) == S_IFSOCK)
        let running = try Subprocess.run(["pgrep", "-f", "virtiofsd --fd=0 -o source=\(directory.file("share"))"])
        #expect(running.status.isSuccess)
        backend.stop()
        backend.stop()
        let after = try Subprocess.run(["pgrep", "-f", "virtiofsd --fd=0 -o source=\(directory.file("share"))"])
        #expect(!after.status.isSuccess)
    }
}
