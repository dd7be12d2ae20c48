import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The libvirt daemon that real-libvirt tests talk to, and the box files they can boot.
///
/// A user gets `qemu:///session`: libvirt starts the user's own libvirtd on demand, without systemd or
/// `XDG_RUNTIME_DIR` (its sockets then live in `~/.cache/libvirt`). For root, libvirt maps
/// `qemu:///session` onto the system daemon's socket, so root's tests need a running system libvirtd.
public enum LibvirtTestHost {
    /// The URI the tests use (the product's default for this user).
    public static let uri: String = geteuid() == 0 ? "qemu:///system" : "qemu:///session"

    /// Why real-libvirt tests cannot run here, or nil when they can.
    public static let unavailableReason: String? = {
        guard Subprocess.which("virsh") != nil else { return "virsh (libvirt-clients) is not installed" }
        guard let result = try? Subprocess.run(["timeout", "30", "virsh", "-c", uri, "uri"]) else {
            return "virsh cannot run"
        }
        guard result.status.isSuccess else {
            return "cannot connect to \(uri): \(result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
        return nil
    }()

    public static var isAvailable: Bool { unavailableReason == nil }

    /// Runs `virsh -c URI ARGUMENTS` (tests only observe libvirt through virsh; the product uses the C API).
    public static func virsh(_ arguments: [String]) throws -> ProcessResult {
        try Subprocess.run(["virsh", "-c", uri] + arguments)
    }

    /// Names of the running domains as virsh lists them.
    public static func runningDomainNames() throws -> [String] {
        try virsh(["list", "--name"]).check().output.split(separator: "\n").map(String.init)
    }

    /// The directory holding the built debian box for `arch`: `BOXSTACK_TEST_BOX_DIR`, else
    /// `Boxes/build/debian-<arch>/` in the checkout; nil when its kernel is not there.
    public static func boxDirectory(arch: String = "x86_64") -> String? {
        let candidates = [
            ProcessInfo.processInfo.environment["BOXSTACK_TEST_BOX_DIR"],
            "\(repositoryRoot)/Boxes/build/debian-\(arch)",
        ].compactMap { $0 }
        return candidates.first { FileManager.default.fileExists(atPath: "\($0)/debian-box.\(arch).kernel") }
    }

    /// A box file (`kernel`, `initrd`, `qcow2`) of the debian box for `arch`, when built.
    public static func boxFile(_ suffix: String, arch: String = "x86_64") -> String? {
        boxDirectory(arch: arch).map { "\($0)/debian-box.\(arch).\(suffix)" }
    }
}
