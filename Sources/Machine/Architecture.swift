import BoxstackCore
import Foundation

/// How a guest CPU is described to libvirt.
public enum CPUModel: Sendable, Equatable {
    /// `<cpu mode='maximum'/>`: every feature the accelerator can offer (TCG's `max`).
    case maximum
    /// `<cpu mode='host-passthrough'/>`: the host CPU, for KVM.
    case hostPassthrough
    /// `<cpu mode='custom'><model>NAME</model></cpu>`.
    case named(String)

    /// Parses a `--cpu` value: `maximum`, `host-passthrough`, or a QEMU model name.
    public init(option: String) {
        switch option {
        case "maximum", "max": self = .maximum
        case "host-passthrough", "host": self = .hostPassthrough
        default: self = .named(option)
        }
    }
}

/// Where the virtio devices that libvirt does not manage (slirp NIC, vhost-user-fs) are plugged in.
public enum DeviceTransport: Sendable, Equatable {
    /// A PCI(e) bus, with explicit slots: on q35 libvirt's own root ports otherwise clash for slot 1.
    case pci(bus: String)
    /// s390x channel I/O: no bus or address.
    case ccw
}

/// What a guest architecture needs from QEMU and libvirt: the arch table.
public struct MachineArchitecture: Sendable, Equatable, CustomStringConvertible {
    /// The box/`uname -m` name: `x86_64`, `aarch64`, `s390x`, `ppc64le`.
    public let name: String
    /// libvirt's `<type arch=…>`.
    public let libvirtArch: String
    /// The QEMU system emulator that runs it.
    public let emulator: String
    public let machine: String
    /// The CPU under TCG; KVM always uses host-passthrough.
    public let emulatedCPU: CPUModel
    /// The kernel's serial console device, for `console=`.
    public let console: String
    /// libvirt's console target type, when not the default serial one.
    public let consoleTargetType: String?
    public let transport: DeviceTransport
    /// Whether the machine has ACPI tables without firmware (x86 does; arm `virt` needs UEFI for ACPI).
    public let hasACPI: Bool
    /// True for architectures whose boxes are built and tested; the others are declarable only.
    public let isSupported: Bool
    /// Kernel arguments every guest of this architecture boots with.
    public let kernelArguments: [String]

    public var description: String { name }

    public static let x86_64 = MachineArchitecture(
        name: "x86_64", libvirtArch: "x86_64", emulator: "qemu-system-x86_64", machine: "q35",
        emulatedCPU: .maximum, console: "ttyS0", consoleTargetType: nil, transport: .pci(bus: "pcie.0"),
        hasACPI: true, isSupported: true,
        // The kernel's boot-time check of the IO-APIC timer fails when an emulated guest on a busy host
        // gets its ticks late, and the kernel then panics ("IO-APIC + timer doesn't work!").
        kernelArguments: ["no_timer_check"])

    /// `cortex-a57`: the fastest model under TCG (Docs/host-facts.md: 2.9 s to a shell against 14.9 s for `max`,
    /// whose pointer-authentication emulation dominates).
    public static let aarch64 = MachineArchitecture(
        name: "aarch64", libvirtArch: "aarch64", emulator: "qemu-system-aarch64", machine: "virt",
        emulatedCPU: .named("cortex-a57"), console: "ttyAMA0", consoleTargetType: nil, transport: .pci(bus: "pcie.0"),
        hasACPI: false, isSupported: true, kernelArguments: [])

    public static let s390x = MachineArchitecture(
        name: "s390x", libvirtArch: "s390x", emulator: "qemu-system-s390x", machine: "s390-ccw-virtio",
        emulatedCPU: .maximum, console: "ttysclp0", consoleTargetType: "sclp", transport: .ccw,
        hasACPI: false, isSupported: false, kernelArguments: [])

    public static let ppc64le = MachineArchitecture(
        name: "ppc64le", libvirtArch: "ppc64le", emulator: "qemu-system-ppc64", machine: "pseries",
        emulatedCPU: .maximum, console: "hvc0", consoleTargetType: nil, transport: .pci(bus: "pci.0"),
        hasACPI: false, isSupported: false, kernelArguments: [])

    public static let all: [MachineArchitecture] = [.x86_64, .aarch64, .s390x, .ppc64le]

    /// The architecture called `name` (`arm64` and `amd64` are accepted too).
    public static func named(_ name: String) throws -> MachineArchitecture {
        let aliases = ["amd64": "x86_64", "arm64": "aarch64", "ppc64el": "ppc64le"]
        let canonical = aliases[name] ?? name
        guard let found = all.first(where: { $0.name == canonical }) else {
            throw BoxstackError(
                .invalidArgument,
                "unknown architecture \(name); use one of \(all.map(\.name).joined(separator: ", ")).")
        }
        return found
    }

    /// The architecture this program runs on.
    public static var host: MachineArchitecture { (try? named(hostArchitecture)) ?? .x86_64 }

    /// The kernel command line of the guest contract: root on the virtio disk, console on the serial port.
    public var defaultKernelCommandLine: String { kernelCommandLine(["root=/dev/vda", "rw"]) }

    /// A kernel command line: `arguments`, then the console (this architecture's unless given),
    /// `panic=-1`, so a panicking guest reboots, which ends its domain instead of hanging, and this
    /// architecture's own `kernelArguments`.
    public func kernelCommandLine(_ arguments: [String], console: String? = nil) -> String {
        (arguments + ["console=\(console ?? self.console)", "panic=-1"] + kernelArguments).joined(separator: " ")
    }

    /// The QEMU `-device` for a virtio device of `kind` (`net`, `vhost-user-fs`) in `slot`.
    func qemuDevice(_ kind: String, slot: Int, _ properties: String) -> String {
        switch transport {
        case .pci(let bus): return "\(kind)-pci,\(properties),bus=\(bus),addr=0x\(String(slot, radix: 16))"
        case .ccw: return "\(kind)-ccw,\(properties)"
        }
    }
}
