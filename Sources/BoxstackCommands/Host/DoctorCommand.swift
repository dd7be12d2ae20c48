import ArgumentParser
import BoxstackCore
import Foundation
import Machine

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

    func run() async throws {
        let checks = Self.checks(uri: connect)
        if json {
            try printJSON(checks)
        } else {
            for check in checks {
                print("\(check.ok ? "ok  " : "FAIL") \(check.name): \(check.detail)")
                if !check.ok, let fix = check.fix { print("     fix: \(fix)") }
            }
        }
        if checks.contains(where: { !$0.ok && $0.name != "kvm" && $0.name != "virtiofsd" }) { throw ExitCode.failure }
    }

    static func checks(uri: String?) -> [Check] {
        var checks: [Check] = []
        do {
            let connection = try LibvirtConnection(uri: uri)
            checks.append(Check(name: "libvirt", ok: true, detail: "connected to \(connection.uri)"))
        } catch {
            checks.append(Check(
                name: "libvirt", ok: false, detail: "\(error)",
                fix: "sudo apt-get install libvirt-daemon-system libvirt-clients"))
        }
        for (arch, emulator, package) in [
            ("x86_64", "qemu-system-x86_64", "qemu-system-x86"), ("aarch64", "qemu-system-aarch64", "qemu-system-arm"),
        ] {
            let path = Subprocess.which(emulator)
            checks.append(Check(
                name: "qemu-\(arch)", ok: path != nil, detail: path ?? "\(emulator) not found",
                fix: "sudo apt-get install \(package)"))
        }
        let kvmUsable = FileManager.default.isWritableFile(atPath: "/dev/kvm")
        checks.append(Check(
            name: "kvm", ok: kvmUsable,
            detail: kvmUsable ? "/dev/kvm is usable (boxstack still probes it before relying on it)"
                : "/dev/kvm is missing or not writable: boxes run under TCG, about 18x slower",
            fix: "add yourself to the group kvm (sudo usermod -a -G kvm $USER) and log in again"))
        let virtiofsd = ["/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        checks.append(Check(
            name: "virtiofsd", ok: virtiofsd != nil, detail: virtiofsd ?? "not found: --virtiofs-sharing is unavailable",
            fix: "sudo apt-get install qemu-system-common (or use --9p-sharing)"))
        let sftpServer = "/usr/lib/openssh/sftp-server"
        checks.append(Check(
            name: "sftp-server", ok: FileManager.default.isExecutableFile(atPath: sftpServer),
            detail: FileManager.default.isExecutableFile(atPath: sftpServer) ? sftpServer : "not found: --sshfs-sharing is unavailable",
            fix: "sudo apt-get install openssh-sftp-server"))
        let qemuImg = Subprocess.which("qemu-img")
        checks.append(Check(
            name: "qemu-img", ok: qemuImg != nil, detail: qemuImg ?? "not found: no per-run overlays",
            fix: "sudo apt-get install qemu-utils"))
        return checks
    }
}
