import BoxstackCore
import Foundation
import Machine
import Sharing
import TestSupport
import Testing

/// One golden domain: an architecture, a sharing backend, online or offline, KVM or TCG.
struct DomainVariant: CustomTestStringConvertible, Sendable {
    var architecture: MachineArchitecture
    var sharing: ShareKind
    var offline = false
    var accelerator = Accelerator.tcg
    /// A warm box's domain: it has the resume port.
    var warm = false

    var name: String {
        "\(architecture.name)-\(sharing.rawValue)" + (offline ? "-offline" : "") + (accelerator == .kvm ? "-kvm" : "")
            + (warm ? "-warm" : "")
    }
    var testDescription: String { name }

    static let all: [DomainVariant] = [
        DomainVariant(architecture: .x86_64, sharing: .ninePee),
        DomainVariant(architecture: .x86_64, sharing: .virtiofs),
        DomainVariant(architecture: .x86_64, sharing: .sshfs),
        DomainVariant(architecture: .x86_64, sharing: .ninePee, offline: true),
        DomainVariant(architecture: .x86_64, sharing: .ninePee, accelerator: .kvm),
        DomainVariant(architecture: .x86_64, sharing: .ninePee, warm: true),
        DomainVariant(architecture: .aarch64, sharing: .ninePee),
        DomainVariant(architecture: .aarch64, sharing: .virtiofs),
        DomainVariant(architecture: .aarch64, sharing: .sshfs),
        DomainVariant(architecture: .aarch64, sharing: .ninePee, offline: true),
        DomainVariant(architecture: .aarch64, sharing: .sshfs, warm: true),
    ]

    /// The spec a run with fixed paths would produce: no random ids, so the XML is stable.
    func spec() -> DomainSpec {
        let run = "/home/user/.cache/boxstack/runs/0123456789ab"
        let box = "/home/user/.cache/boxstack/boxes/debian"
        var spec = DomainSpec(
            name: "boxstack-0123456789ab", architecture: architecture, accelerator: accelerator, memoryMiB: 4096, vcpus: 2,
            kernel: "\(box)/debian-box.\(architecture.name).kernel", initrd: "\(box)/debian-box.\(architecture.name).initrd",
            disk: "\(run)/overlay.qcow2", consoleLog: "\(run)/console.log",
            network: UserNetwork(sshHostPort: 40022, offline: offline),
            ninePFilesystems: [SeedShare.filesystem(hostDirectory: "\(run)/seed")])
        if warm { spec.serialChannel = SerialChannel(socketPath: "\(run)/sockets/resume.sock", portName: "org.boxstack.resume") }
        let shares = [SharedPath(hostPath: "/home/user/description"), SharedPath(hostPath: "/home/user/target")]
        let backend: any ShareBackend =
            switch sharing {
            case .ninePee: NinePShareBackend(shares: shares)
            case .virtiofs: VirtiofsShareBackend(shares: shares, socketsDirectory: "\(run)/sockets")
            case .sshfs: SSHFSShareBackend(shares: shares)
            }
        backend.configure(&spec)
        return spec
    }
}

@Suite struct DomainXMLTests {
    static let goldenDirectory = "\(repositoryRoot)/Tests/MachineTests/Golden"

    /// Set BOXSTACK_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
    @Test(arguments: DomainVariant.all)
    func domainXMLMatchesGolden(_ variant: DomainVariant) throws {
        let xml = variant.spec().xml()
        let path = "\(Self.goldenDirectory)/\(variant.name).xml"
        if ProcessInfo.processInfo.environment["BOXSTACK_UPDATE_GOLDEN"] == "1" {
            try Data(xml.utf8).writeAtomically(to: path)
        }
        let golden = try #require(FileManager.default.contents(atPath: path), "missing golden file \(path)")
        #expect(xml == String(decoding: golden, as: UTF8.self))
    }

    /// libvirt's own RELAX NG schema accepts every variant.
    @Test(arguments: DomainVariant.all)
    func domainXMLIsValidForLibvirt(_ variant: DomainVariant) throws {
        let directory = try TemporaryDirectory("domain-xml")
        let file = directory.file("\(variant.name).xml")
        try Data(variant.spec().xml().utf8).write(to: URL(fileURLWithPath: file))
        let result = try Subprocess.run(["virt-xml-validate", file, "domain"])
        #expect(result.status.isSuccess, "\(result.output)\(result.errorOutput)")
    }

    @Test func offlineRestrictsNetworkButKeepsSSHForward() {
        let online = DomainVariant(architecture: .x86_64, sharing: .ninePee).spec().xml()
        let offline = DomainVariant(architecture: .x86_64, sharing: .ninePee, offline: true).spec().xml()
        #expect(!online.contains("restrict=on"))
        #expect(offline.contains("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"))
    }

    @Test func aWarmBoxHasItsResumePortOnASocketQEMUListensOn() {
        let xml = DomainVariant(architecture: .x86_64, sharing: .ninePee, warm: true).spec().xml()
        #expect(xml.contains("<channel type=\"unix\">"))
        #expect(xml.contains("<source mode=\"bind\" path=\"/home/user/.cache/boxstack/runs/0123456789ab/sockets/resume.sock\"/>"))
        #expect(xml.contains("<target type=\"virtio\" name=\"org.boxstack.resume\"/>"))
        #expect(!DomainVariant(architecture: .x86_64, sharing: .ninePee).spec().xml().contains("<channel"))
    }

    @Test func seedShareIsReadOnlyMapped9p() {
        let xml = DomainVariant(architecture: .x86_64, sharing: .sshfs).spec().xml()
        #expect(xml.contains("<target dir=\"boxstack-seed\"/>\n      <readonly/>"))
        #expect(!xml.contains("accessmode=\"passthrough\""))
    }

    @Test func virtiofsNeedsSharedMemoryAndVhostUserDevices() {
        let xml = DomainVariant(architecture: .x86_64, sharing: .virtiofs).spec().xml()
        #expect(xml.contains("<source type=\"memfd\"/>"))
        #expect(xml.contains("<access mode=\"shared\"/>"))
        #expect(xml.contains("vhost-user-fs-pci,chardev=vfs0,tag=boxstack-share0,bus=pcie.0,addr=0x11"))
        #expect(xml.contains("vhost-user-fs-pci,chardev=vfs1,tag=boxstack-share1,bus=pcie.0,addr=0x12"))
    }

    @Test func machineAndCPUOverridesReplaceTheArchitectureDefaults() {
        var spec = DomainVariant(architecture: .aarch64, sharing: .ninePee).spec()
        spec.machineOverride = "virt-7.2"
        spec.cpuOverride = CPUModel(option: "max")
        let xml = spec.xml()
        #expect(xml.contains("machine=\"virt-7.2\""))
        #expect(xml.contains("<cpu mode=\"maximum\"/>"))
        #expect(!xml.contains("cortex-a57"))
    }

    @Test func textIsEscapedByLibxml2() {
        var spec = DomainVariant(architecture: .x86_64, sharing: .sshfs).spec()
        spec.consoleLog = "/tmp/a&b<c>/console.log"
        #expect(spec.xml().contains("/tmp/a&amp;b&lt;c&gt;/console.log"))
    }
}

@Suite struct ArchitectureTests {
    @Test func aarch64UsesVirtCortexA57AndTheAMAConsole() throws {
        let arch = try MachineArchitecture.named("arm64")
        #expect(arch == .aarch64)
        #expect(arch.machine == "virt")
        #expect(arch.emulatedCPU == .named("cortex-a57"))
        #expect(arch.defaultKernelCommandLine == "root=/dev/vda rw console=ttyAMA0 panic=-1")
        #expect(MachineArchitecture.x86_64.defaultKernelCommandLine == "root=/dev/vda rw console=ttyS0 panic=-1 no_timer_check")
    }

    @Test func s390xAndPpc64leAreDeclarable() throws {
        #expect(try MachineArchitecture.named("s390x").console == "ttysclp0")
        #expect(try MachineArchitecture.named("ppc64el").machine == "pseries")
        #expect(!MachineArchitecture.s390x.isSupported)
    }

    @Test func unknownArchitectureIsNamedInTheError() {
        #expect {
            try MachineArchitecture.named("mips")
        } throws: { error in
            "\(error)".contains("unknown architecture mips")
        }
    }
}
