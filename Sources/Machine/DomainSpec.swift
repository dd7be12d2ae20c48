import BoxstackCore
import Foundation
import XML

/// A host directory exported to the guest over 9p (`<filesystem accessmode='mapped'>`).
///
/// `mapped` is the mode in which guest root can create files as a non-root host user: the host sees the
/// user's own files and the guest's owners and modes live in `user.virtfs.*` xattrs (Docs/host-facts.md).
public struct NinePFilesystem: Sendable, Equatable {
    public var hostPath: String
    public var tag: String
    public var readOnly: Bool

    public init(hostPath: String, tag: String, readOnly: Bool = false) {
        self.hostPath = hostPath
        self.tag = tag
        self.readOnly = readOnly
    }
}

/// A virtiofs export served by a virtiofsd the controller runs itself, reached through its socket.
///
/// libvirt 9.0 refuses virtiofs in session mode, so the device is wired up through qemu:commandline.
public struct VhostUserFilesystem: Sendable, Equatable {
    public var socketPath: String
    public var tag: String

    public init(socketPath: String, tag: String) {
        self.socketPath = socketPath
        self.tag = tag
    }
}

/// A virtio-serial port whose host end is a Unix socket QEMU listens on (`<channel type='unix'>`).
public struct SerialChannel: Sendable, Equatable {
    public var socketPath: String
    /// The port's name in the guest: `/dev/virtio-ports/<portName>`.
    public var portName: String

    public init(socketPath: String, portName: String) {
        self.socketPath = socketPath
        self.portName = portName
    }
}

/// User-mode (slirp) networking with the guest's SSH port forwarded to 127.0.0.1 only.
public struct UserNetwork: Sendable, Equatable {
    /// The host port on 127.0.0.1 that reaches the guest's port 22.
    public var sshHostPort: Int
    /// No outbound network for the guest (`restrict=on`); the forwarded port still works.
    public var offline: Bool

    public init(sshHostPort: Int, offline: Bool = false) {
        self.sshHostPort = sshHostPort
        self.offline = offline
    }
}

/// The hardware accelerator a domain runs on.
public enum Accelerator: String, Sendable, Equatable {
    case kvm
    /// QEMU's emulation (libvirt domain type `qemu`).
    case tcg

    /// libvirt's `<domain type=…>`.
    public var domainType: String { self == .kvm ? "kvm" : "qemu" }
}

/// Everything that describes one boxstack domain; `xml()` turns it into libvirt domain XML.
///
/// A plain value with no hidden inputs: the same spec always gives the same XML (the golden tests rely on it).
public struct DomainSpec: Sendable, Equatable {
    public var name: String
    /// Set for a domain saved as a warm image: a restore must keep the UUID the image was saved with.
    public var uuid: String?
    /// What `virsh list --title` shows: the run a domain belongs to when its name is a warm image's.
    public var title: String?
    public var architecture: MachineArchitecture
    public var accelerator: Accelerator
    public var memoryMiB: Int
    public var vcpus: Int
    /// Direct kernel boot; nil boots the firmware (only useful for tests of the lifecycle).
    public var kernel: String?
    public var initrd: String?
    public var kernelCommandLine: String
    /// The qcow2 the guest boots from as `/dev/vda`: the per-run overlay, or the box disk with `--no-snapshot`.
    public var disk: String?
    /// Serial console output goes here.
    public var consoleLog: String
    public var network: UserNetwork?
    public var ninePFilesystems: [NinePFilesystem]
    public var vhostUserFilesystems: [VhostUserFilesystem]
    /// The Unix socket QEMU listens on for the virtio-serial port `portName` (a warm box's resume port,
    /// Docs/warm-boxes.md); nil for none.
    public var serialChannel: SerialChannel?
    /// `--machine`: replaces the architecture's machine type.
    public var machineOverride: String?
    /// `--cpu`: replaces the CPU chosen from the architecture and accelerator.
    public var cpuOverride: CPUModel?

    public init(
        name: String, architecture: MachineArchitecture, accelerator: Accelerator, memoryMiB: Int = 2048, vcpus: Int = 2,
        kernel: String?, initrd: String?, kernelCommandLine: String? = nil, disk: String?, consoleLog: String,
        network: UserNetwork?, ninePFilesystems: [NinePFilesystem] = [], vhostUserFilesystems: [VhostUserFilesystem] = [],
        serialChannel: SerialChannel? = nil, machineOverride: String? = nil, cpuOverride: CPUModel? = nil
    ) {
        self.name = name
        self.architecture = architecture
        self.accelerator = accelerator
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.kernel = kernel
        self.initrd = initrd
        self.kernelCommandLine = kernelCommandLine ?? architecture.defaultKernelCommandLine
        self.disk = disk
        self.consoleLog = consoleLog
        self.network = network
        self.ninePFilesystems = ninePFilesystems
        self.vhostUserFilesystems = vhostUserFilesystems
        self.serialChannel = serialChannel
        self.machineOverride = machineOverride
        self.cpuOverride = cpuOverride
    }

    /// The PCI slot of the slirp NIC; vhost-user-fs devices follow it (Docs/host-facts.md: explicit slots on q35).
    static let networkSlot = 0x10

    /// The libvirt domain XML.
    public func xml() -> String {
        let document = XML.XMLDocument(rootName: "domain")
        guard let domain = document.root else { return "" }
        domain.setAttribute("type", accelerator.domainType)
        let needsCommandLine = network != nil || !vhostUserFilesystems.isEmpty
        if needsCommandLine { domain.declareNamespace(prefix: "qemu", href: "http://libvirt.org/schemas/domain/qemu/1.0") }

        domain.append("name", text: name)
        if let uuid { domain.append("uuid", text: uuid) }
        if let title { domain.append("title", text: title) }
        domain.append("memory", text: String(memoryMiB), attributes: ["unit": "MiB"])
        if !vhostUserFilesystems.isEmpty {
            // vhost-user needs guest memory the virtiofsd process can map.
            let backing = domain.append("memoryBacking")
            backing.append("source", attributes: ["type": "memfd"])
            backing.append("access", attributes: ["mode": "shared"])
        }
        domain.append("vcpu", text: String(vcpus))

        let os = domain.append("os")
        os.append("type", text: "hvm", attributes: ["arch": architecture.libvirtArch, "machine": machineOverride ?? architecture.machine])
        if let kernel {
            os.append("kernel", text: kernel)
            if let initrd { os.append("initrd", text: initrd) }
            os.append("cmdline", text: kernelCommandLine)
        }

        if architecture.hasACPI {
            let features = domain.append("features")
            features.append("acpi")
            features.append("apic")
        }
        appendCPU(to: domain)
        domain.append("clock", attributes: ["offset": "utc"])
        // A reboot or crash ends the run: a panicking guest (panic=-1 reboots) makes the domain vanish
        // at once instead of hanging until the timeout.
        domain.append("on_poweroff", text: "destroy")
        domain.append("on_reboot", text: "destroy")
        domain.append("on_crash", text: "destroy")

        let devices = domain.append("devices")
        if let disk {
            let element = devices.append("disk", attributes: ["type": "file", "device": "disk"])
            // cache=unsafe: the overlay is thrown away after the run, so flushes buy nothing.
            element.append("driver", attributes: ["name": "qemu", "type": "qcow2", "cache": "unsafe"])
            element.append("source", attributes: ["file": disk])
            element.append("target", attributes: ["dev": "vda", "bus": "virtio"])
        }
        for filesystem in ninePFilesystems {
            let element = devices.append("filesystem", attributes: ["type": "mount", "accessmode": "mapped"])
            element.append("source", attributes: ["dir": filesystem.hostPath])
            element.append("target", attributes: ["dir": filesystem.tag])
            if filesystem.readOnly { element.append("readonly") }
        }
        let serial = devices.append("serial", attributes: ["type": "file"])
        serial.append("source", attributes: ["path": consoleLog, "append": "on"])
        serial.append("target", attributes: ["port": "0"])
        let console = devices.append("console", attributes: ["type": "file"])
        console.append("source", attributes: ["path": consoleLog, "append": "on"])
        console.append("target", attributes: ["type": architecture.consoleTargetType ?? "serial", "port": "0"])
        if let serialChannel {
            let channel = devices.append("channel", attributes: ["type": "unix"])
            channel.append("source", attributes: ["mode": "bind", "path": serialChannel.socketPath])
            channel.append("target", attributes: ["type": "virtio", "name": serialChannel.portName])
        }
        let rng = devices.append("rng", attributes: ["model": "virtio"])
        rng.append("backend", text: "/dev/urandom", attributes: ["model": "random"])
        devices.append("memballoon", attributes: ["model": "none"])

        if needsCommandLine {
            let commandLine = domain.append("commandline", namespacePrefix: "qemu")
            for argument in qemuArguments {
                commandLine.append("arg", attributes: ["value": argument], namespacePrefix: "qemu")
            }
        }
        return document.serialized()
    }

    /// The QEMU arguments libvirt cannot express in session mode: slirp with hostfwd, and vhost-user-fs.
    var qemuArguments: [String] {
        var arguments: [String] = []
        if let network {
            var netdev = "user,id=n0"
            if network.offline { netdev += ",restrict=on" }
            netdev += ",hostfwd=tcp:127.0.0.1:\(network.sshHostPort)-:22"
            arguments += ["-netdev", netdev, "-device", architecture.qemuDevice("virtio-net", slot: Self.networkSlot, "netdev=n0")]
        }
        for (index, filesystem) in vhostUserFilesystems.enumerated() {
            let chardev = "vfs\(index)"
            arguments += ["-chardev", "socket,id=\(chardev),path=\(filesystem.socketPath)"]
            arguments += [
                "-device",
                architecture.qemuDevice("vhost-user-fs", slot: Self.networkSlot + 1 + index, "chardev=\(chardev),tag=\(filesystem.tag)"),
            ]
        }
        return arguments
    }

    private func appendCPU(to domain: XMLElement) {
        let model = cpuOverride ?? (accelerator == .kvm ? .hostPassthrough : architecture.emulatedCPU)
        switch model {
        case .maximum: domain.append("cpu", attributes: ["mode": "maximum"])
        case .hostPassthrough: domain.append("cpu", attributes: ["mode": "host-passthrough"])
        case .named(let name):
            let cpu = domain.append("cpu", attributes: ["mode": "custom", "match": "exact"])
            cpu.append("model", text: name, attributes: ["fallback": "forbid"])
        }
    }
}
