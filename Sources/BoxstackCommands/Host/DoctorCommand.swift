import ArgumentParser
import BoxstackCore
import Foundation
import Guest
import Machine
import Sharing

/// `boxstack doctor`: checks what boxed builds need on this host and says how to fix what is missing.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this host for boxed builds (libvirt, QEMU per architecture, KVM, virtiofsd, sftp-server).")

    @Option(help: ArgumentHelp("libvirt URI to check (default as for builds).", valueName: "uri"))
    var connect: String?

    @Flag(help: "Print the checks as JSON.")
    var json = false

    struct Check: Encodable {
        var name: String
        var ok: Bool
        var detail: String
        var fix: String?
    }

    struct Report: Encodable {
        var version: String
        var agentProtocol: Int
        var checks: [Check]
    }

    func run() async throws {
        let checks = Self.checks(uri: connect)
        if json {
            try printJSON(Report(version: BoxstackVersion.current, agentProtocol: GuestAgent.protocolVersion, checks: checks))
        } else {
            print("boxstack \(BoxstackVersion.current), guest agent protocol \(GuestAgent.protocolVersion)")
            for check in checks {
                print("\(check.ok ? "ok  " : "FAIL") \(check.name): \(check.detail)")
                if !check.ok, let fix = check.fix { print("     fix: \(fix)") }
            }
        }
        if checks.contains(where: { !$0.ok && !Self.optional.contains($0.name) }) { throw ExitCode.failure }
    }

    /// Checks whose failure only rules out an option (KVM, virtiofs sharing, sshfs sharing).
    static let optional: Set = ["kvm", "virtiofsd", "subordinate-ids", "sftp-server"]

    static func checks(uri: String?) -> [Check] {
        var checks: [Check] = []
        do {
            let connection = try LibvirtConnection(uri: uri)
            checks.append(Check(name: "libvirt", ok: true, detail: "connected to \(connection.uri)"))
        } catch {
            checks.append(
                Check(
                    name: "libvirt", ok: false, detail: "\(error)",
                    fix: geteuid() == 0
                        ? "sudo apt-get install libvirt-daemon-system libvirt-clients && sudo systemctl start libvirtd"
                        : "sudo apt-get install libvirt-daemon-system libvirt-clients (a user's session daemon starts on demand)"))
        }
        for (arch, emulator, package) in [
            ("x86_64", "qemu-system-x86_64", "qemu-system-x86"), ("aarch64", "qemu-system-aarch64", "qemu-system-arm"),
        ] {
            let path = Subprocess.which(emulator)
            checks.append(
                Check(
                    name: "qemu-\(arch)", ok: path != nil, detail: path ?? "\(emulator) not found",
                    fix: "sudo apt-get install \(package)"))
        }
        let kvmUsable = FileManager.default.isWritableFile(atPath: "/dev/kvm")
        checks.append(
            Check(
                name: "kvm", ok: kvmUsable,
                detail: kvmUsable
                    ? "/dev/kvm is usable (boxstack still probes it before relying on it)"
                    : "/dev/kvm is missing or not writable: boxes run under TCG, about 18x slower",
                fix: "add yourself to the group kvm (sudo usermod -a -G kvm $USER) and log in again"))
        let virtiofsd = try? VirtiofsShareBackend.findVirtiofsd()
        checks.append(
            Check(
                name: "virtiofsd", ok: virtiofsd != nil, detail: virtiofsd ?? "not found: --virtiofs-sharing is unavailable",
                fix: "sudo apt-get install qemu-system-common (or use --9p-sharing)"))
        do {
            _ = try VirtiofsShareBackend.userNamespacePrefix()
            checks.append(Check(name: "subordinate-ids", ok: true, detail: "this user has subordinate uids and gids"))
        } catch {
            checks.append(
                Check(
                    name: "subordinate-ids", ok: false, detail: "\(error)",
                    fix:
                        "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER (virtiofs sharing and Scripts/build-box need them)"
                ))
        }
        let sftpServer = SFTPBridge.defaultSFTPServer
        checks.append(
            Check(
                name: "sftp-server", ok: FileManager.default.isExecutableFile(atPath: sftpServer),
                detail: FileManager.default.isExecutableFile(atPath: sftpServer) ? sftpServer : "not found: --sshfs-sharing is unavailable",
                fix: "sudo apt-get install openssh-sftp-server"))
        let qemuImg = Subprocess.which("qemu-img")
        checks.append(
            Check(
                name: "qemu-img", ok: qemuImg != nil, detail: qemuImg ?? "not found: no per-run overlays",
                fix: "sudo apt-get install qemu-utils"))
        return checks
    }
}
