import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The accelerator chosen for a run, and the one-line notice to show when it is not KVM.
public struct AcceleratorChoice: Sendable, Equatable {
    public var accelerator: Accelerator
    /// Printed once to the user when boxstack falls back to TCG without being asked to.
    public var notice: String?

    public init(accelerator: Accelerator, notice: String?) {
        self.accelerator = accelerator
        self.notice = notice
    }
}

/// Chooses KVM or TCG.
///
/// KVM only when the guest architecture is the host's, `/dev/kvm` opens read-write, and a bounded probe
/// shows a kernel actually starts under it: on some hosts (nested setups) `/dev/kvm` exists but guests hang
/// right after the kernel decompresses. The probe's verdict is cached per host boot.
public struct AcceleratorSelector: Sendable {
    public var cacheDirectory: String
    public var kvmDevice: String
    public var probeTimeoutSeconds: Int
    public var environment: [String: String]

    public init(
        cacheDirectory: String = Paths().cacheDirectory, kvmDevice: String = "/dev/kvm", probeTimeoutSeconds: Int = 5,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.cacheDirectory = cacheDirectory
        self.kvmDevice = kvmDevice
        self.probeTimeoutSeconds = probeTimeoutSeconds
        self.environment = environment
    }

    /// Picks the accelerator for `architecture`; `probeKernel` is a kernel of that architecture (the box's).
    ///
    /// `noAccel` (`--no-accel`) or `BOXSTACK_NO_ACCEL=1` force TCG without a notice: the user asked for it.
    public func choose(for architecture: MachineArchitecture, probeKernel: String, noAccel: Bool = false) -> AcceleratorChoice {
        if noAccel || environment["BOXSTACK_NO_ACCEL"] == "1" { return AcceleratorChoice(accelerator: .tcg, notice: nil) }
        guard architecture == .host else {
            return tcg("the \(architecture) guest runs under TCG emulation on this \(MachineArchitecture.host) host, which is slower")
        }
        guard access(kvmDevice, R_OK | W_OK) == 0 else {
            return tcg("\(kvmDevice) \(Self.whyUnusable(kvmDevice)), so the box runs under TCG emulation, which is slower")
        }
        if kvmBootsGuests(architecture: architecture, kernel: probeKernel) { return AcceleratorChoice(accelerator: .kvm, notice: nil) }
        return tcg(
            "\(kvmDevice) exists but a probe guest did not boot under KVM within \(probeTimeoutSeconds) s, so the box runs under TCG emulation, which is slower"
        )
    }

    /// Why this user cannot open `device` read-write, and what fixes it.
    public static func whyUnusable(_ device: String) -> String {
        var info = stat()
        guard stat(device, &info) == 0 else {
            return "does not exist (the kvm module is not loaded, or this machine has no hardware virtualization)"
        }
        let mode = String(info.st_mode & 0o777, radix: 8)
        let group = getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) } ?? String(info.st_gid)
        if info.st_mode & 0o060 == 0o060 {
            return "is not usable by this user (add yourself to group \(group) and log in again to fix it)"
        }
        return
            "is not usable by this user (mode \(mode), group \(group): only its owner can use it; give group kvm read-write access, as udev's rule KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\" does, and join that group)"
    }

    private func tcg(_ notice: String) -> AcceleratorChoice {
        AcceleratorChoice(accelerator: .tcg, notice: "notice: \(notice).")
    }

    /// The cached verdict for this boot of the host, else a fresh probe (whose verdict is then cached).
    func kvmBootsGuests(architecture: MachineArchitecture, kernel: String) -> Bool {
        let bootID =
            (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown-boot"
        let cacheFile = "\(cacheDirectory)/kvm-probe-\(architecture.name)-\(bootID)"
        if let cached = try? String(contentsOfFile: cacheFile, encoding: .utf8) {
            return cached.trimmingCharacters(in: .whitespacesAndNewlines) == "kvm"
        }
        let works = probe(architecture: architecture, kernel: kernel)
        try? FileManager.default.makeDirectory(cacheDirectory)
        try? Data((works ? "kvm\n" : "tcg\n").utf8).writeAtomically(to: cacheFile)
        return works
    }

    /// Boots `kernel` under KVM with no root file system: a working KVM prints the kernel banner within a
    /// second, panics for lack of a root and exits (`panic=-1`, `-no-reboot`); a broken one prints nothing.
    func probe(architecture: MachineArchitecture, kernel: String) -> Bool {
        let arguments = [
            "timeout", "-s", "KILL", String(probeTimeoutSeconds), architecture.emulator,
            "-accel", "kvm", "-M", architecture.machine, "-cpu", "host", "-m", "256", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", kernel, "-append", architecture.kernelCommandLine([]),
        ]
        guard let result = try? Subprocess.run(arguments) else { return false }
        return result.output.contains("Linux version")
    }
}
