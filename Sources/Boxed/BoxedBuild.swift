import BoxstackCore
import Foundation
import Guest
import Kiwi
import Machine
import Registry
import Sharing
import Stash

/// One boxed KIWI run: a build, a stackbuild, optionally keeping the root as a stash.
public struct BoxedBuildConfiguration: Sendable {
    public var session: BoxSessionOptions
    public var request: KiwiBuildRequest
    public var kiwiType: String?
    public var profiles: [String] = []
    public var kiwiVersion: String?
    /// `--keep-root NAME[:TAG]`.
    public var keepRoot: String?
    public var debug = false
    /// Timeouts for pulling the stashes from `--from-registry`.
    public var registryTimeouts = RegistryTimeouts()
    /// A KIWI runtime configuration (the YAML `kiwi-ng --config` reads) for this run.
    public var kiwiRuntimeConfiguration: String?
    public var delivery = ResultDelivery.bundle

    public init(session: BoxSessionOptions, request: KiwiBuildRequest) {
        self.session = session
        self.request = request
    }
}

/// What a successful run leaves in the host's target directory.
public enum ResultDelivery: Sendable {
    /// KIWI's result bundle (`kiwi-ng result bundle`): what a user's build publishes.
    case bundle
    /// The files at the top of KIWI's target directory as KIWI left them, less its `.tar.xz` archives: a box
    /// build takes the kis type's kernel, initrd and root file system image, which the bundle only holds
    /// packed into one xz tarball.
    case targetFiles
}

/// Paths inside the box.
enum GuestPaths {
    static let description = "/run/boxstack/description"
    static let target = "/run/boxstack/target"
    /// KIWI works on the box's own disk, never in a share.
    static let work = "/var/tmp/boxstack"
    static let localDescription = work + "/description"
    static let localTarget = work + "/target"
    static let imageRoot = localTarget + "/build/image-root"
    static let hostCertificates = "/run/boxstack/host-ca-certificates.crt"
    static let kiwiRuntimeConfiguration = work + "/kiwi.yml"
}

public enum BoxedBuild {
    /// Runs the build and returns KIWI's exit code (or the first failing step's).
    public static func run(
        _ configuration: BoxedBuildConfiguration, store: StashStore = StashStore(), launcher: any BoxLauncher = LibvirtBoxLauncher()
    ) async throws -> Int32 {
        let request = configuration.request
        let started = Date()
        try FileManager.default.makeDirectory(request.targetDirectory)
        let log = try BuildLog(path: request.targetDirectory + "/boxstack.log")
        // Resolve the stashes and merge a derived description before booting: neither a missing stash
        // nor a description that does not merge should cost a boot.
        let stack =
            request.isStackbuild
            ? try await BoxedDerived.namingBase(of: request.derived) {
                try await BoxedStash.resolve(
                    request.stashes, fromRegistry: request.fromRegistry, timeouts: configuration.registryTimeouts, store: store)
            } : nil
        let merged = try request.derived.map { try BoxedDerived.merge($0, store: store, targetDirectory: request.targetDirectory, log: log) }

        let machine = try await launcher.start(sessionOptions(configuration, log: log))
        defer {
            if configuration.debug { log.note("the box keeps running (--box-debug); get in with:\n" + machine.debugInstructions) }
            machine.shutdown()
        }
        let run = BoxedRun(configuration: configuration, machine: machine, guest: try machine.guest, log: log, store: store)
        if let hello = machine.hello {
            log.note("agent \(hello.agentVersion) on \(hello.architecture), KIWI \(hello.kiwiVersion ?? "none")")
        }
        if let version = configuration.kiwiVersion { try await run.installKiwi(version) }
        try await run.stageDescription(merged: merged)
        if let runtime = configuration.kiwiRuntimeConfiguration { try run.stageRuntimeConfiguration(runtime) }
        if let stack { try await run.importStack(stack) }
        if merged != nil { try await run.clearBaseMetadata() }
        let status = try await run.runKiwi()
        guard status.isSuccess else {
            log.note("KIWI failed (\(status)); the log is \(request.targetDirectory)/boxstack.log")
            return exitCode(status)
        }
        try await run.deliverResults(since: started)
        if let keepRoot = configuration.keepRoot { try await run.keepRoot(keepRoot) }
        return 0
    }

    /// The session options of the run: its shares, the exchange share when stashes cross, reports to the log.
    static func sessionOptions(_ configuration: BoxedBuildConfiguration, log: BuildLog) -> BoxSessionOptions {
        let request = configuration.request
        var options = configuration.session
        options.report = { log.note($0) }
        options.keepRunning = configuration.debug
        options.shares = [SharedPath(hostPath: request.targetDirectory, guestPath: GuestPaths.target)] + options.shares
        if let description = request.descriptionDirectory {
            options.shares.insert(SharedPath(hostPath: description, guestPath: GuestPaths.description), at: 0)
        }
        options.exchange = request.isStackbuild || configuration.keepRoot != nil
        return options
    }

    /// The host's CA bundle (Debian's, else Fedora's), if there is one.
    static var hostCertificateBundle: String? {
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"].first { FileManager.default.isReadableFile(atPath: $0) }
    }

    /// The process exit code that reports `status` (128 + signal for a signalled command, as shells do).
    public static func exitCode(_ status: ExitStatus) -> Int32 {
        switch status {
        case .terminated(let code): return code
        case .signalled(let signal): return 128 + signal
        }
    }
}
