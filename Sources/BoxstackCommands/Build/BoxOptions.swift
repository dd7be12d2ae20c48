import ArgumentParser
import BoxstackCore

/// How a box shares host directories.
enum SharingChoice: String, EnumerableFlag {
    case ninePSharing, virtiofsSharing, sshfsSharing

    static func name(for value: SharingChoice) -> NameSpecification {
        switch value {
        case .ninePSharing: return .customLong("9p-sharing")
        case .virtiofsSharing: return .customLong("virtiofs-sharing")
        case .sshfsSharing: return .customLong("sshfs-sharing")
        }
    }

    static func help(for value: SharingChoice) -> ArgumentHelp? {
        switch value {
        case .ninePSharing: return "Share directories over 9p (default)."
        case .virtiofsSharing: return "Share directories over virtiofs (runs virtiofsd as you)."
        case .sshfsSharing: return "Share directories over sshfs through the SSH channel (no host sshd needed)."
        }
    }
}

/// Shorthands for `--arch`.
enum ArchFlag: String, EnumerableFlag {
    case x86_64, aarch64

    static func name(for value: ArchFlag) -> NameSpecification { .customLong(value.rawValue) }
    static func help(for value: ArchFlag) -> ArgumentHelp? { "Same as --arch \(value.rawValue)." }
}

/// The options that choose and shape the box; names follow KIWI's boxbuild.
struct BoxOptions: ParsableArguments {
    @Option(help: "The box to build in (see 'boxstack boxes list').")
    var box: String = "debian"

    @Option(name: .customLong("box-memory"), help: ArgumentHelp("Memory of the box, with units.", valueName: "size"))
    var boxMemory: String?

    @Option(name: .customLong("box-smp-cpus"), help: ArgumentHelp("Number of virtual CPUs.", valueName: "n"))
    var boxSMPCPUs: Int?

    @Option(name: .customLong("box-console"), help: ArgumentHelp("Guest console device (default from the catalog).", valueName: "tty"))
    var boxConsole: String?

    @Flag(name: .customLong("box-debug"), help: "Keep the box running after the command and print how to get in.")
    var boxDebug = false

    @Option(name: .customLong("kiwi-version"), help: ArgumentHelp("Install this KIWI version with pip in the box first.", valueName: "version"))
    var kiwiVersion: String?

    @Option(name: .customLong("shared-path"), help: ArgumentHelp("Also share PATH at the same path in the box (repeatable).", valueName: "path"))
    var sharedPaths: [String] = []

    @Flag(name: .customLong("no-update-check"), help: "Use the cached box without checking its source for updates.")
    var noUpdateCheck = false

    @Flag(name: .customLong("no-snapshot"), help: "Run on the box disk itself instead of a throw-away overlay (changes persist).")
    var noSnapshot = false

    @Flag(name: .customLong("no-accel"), help: "Never use KVM; emulate with TCG.")
    var noAccel = false

    @Flag(help: "Boot the box cold instead of restoring its warm image (see 'boxstack boxes warm').")
    var cold = false

    @Flag(help: "How to share directories with the box.")
    var sharing: SharingChoice = .ninePSharing

    @Flag(help: "Box architecture shorthand.")
    var archFlag: ArchFlag?

    @Option(help: ArgumentHelp("Box architecture (x86_64, aarch64; default: the host's).", valueName: "arch"))
    var arch: String?

    @Option(help: ArgumentHelp("QEMU machine type (default per architecture: q35, virt).", valueName: "machine"))
    var machine: String?

    @Option(help: ArgumentHelp("QEMU CPU model (default per architecture).", valueName: "model"))
    var cpu: String?

    @Option(help: ArgumentHelp("KIWI image type to build (kiwi-ng --type).", valueName: "type"))
    var type: String?

    @Option(help: ArgumentHelp("KIWI profile to use (kiwi-ng --profile, repeatable).", valueName: "name"))
    var profile: [String] = []

    @Option(help: ArgumentHelp("libvirt URI (default qemu:///session for a user, qemu:///system for root).", valueName: "uri"))
    var connect: String?

    @Option(help: ArgumentHelp("Seconds to wait for the box's agent to answer.", valueName: "seconds"))
    var timeout: Int = BoxOptions.defaultTimeout

    static let defaultTimeout = 600

    @Flag(help: "Start the box without outbound network (proves a rebuild is hermetic).")
    var offline = false

    func validate() throws {
        if let boxMemory, ByteCount.parse(boxMemory) == nil {
            throw ValidationError("--box-memory '\(boxMemory)' is not a size; use units, e.g. 4G or 8192M.")
        }
        if let boxSMPCPUs, boxSMPCPUs < 1 { throw ValidationError("--box-smp-cpus must be at least 1.") }
        if let archFlag, let arch, arch != archFlag.rawValue {
            throw ValidationError("--\(archFlag.rawValue) and --arch \(arch) disagree.")
        }
        if timeout < 1 { throw ValidationError("--timeout must be a positive number of seconds.") }
    }

    /// The architecture asked for, or nil for the host's.
    var requestedArch: String? { archFlag?.rawValue ?? arch }
}
