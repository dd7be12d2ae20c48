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

    public init(session: BoxSessionOptions, request: KiwiBuildRequest) {
        self.session = session
        self.request = request
    }
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
}

public enum BoxedBuild {
    /// Runs the build and returns KIWI's exit code (or the first failing step's).
    public static func run(_ configuration: BoxedBuildConfiguration, store: StashStore = StashStore()) async throws -> Int32 {
        let request = configuration.request
        let started = Date()
        try FileManager.default.makeDirectory(request.targetDirectory)
        let log = try BuildLog(path: request.targetDirectory + "/boxstack.log")
        var options = configuration.session
        options.report = { log.note($0) }
        options.keepRunning = configuration.debug
        options.shares = [SharedPath(hostPath: request.targetDirectory, guestPath: GuestPaths.target)] + options.shares
        if let description = request.descriptionDirectory {
            options.shares.insert(SharedPath(hostPath: description, guestPath: GuestPaths.description), at: 0)
        }
        options.exchange = request.isStackbuild || configuration.keepRoot != nil

        // Resolve the stashes before booting: a missing stash should not cost a boot.
        let stack =
            request.isStackbuild
            ? try await BoxedStash.resolve(
                request.stashes, fromRegistry: request.fromRegistry, timeouts: configuration.registryTimeouts, store: store) : nil

        let session = try await BoxSession.start(options)
        defer {
            if configuration.debug {
                log.note("the box keeps running (--box-debug); get in with:\n" + session.debugInstructions)
            }
            session.shutdown()
        }
        guard let agent = session.agent else { throw BoxstackError(.internalError, "the box session has no agent.") }
        if let hello = session.hello {
            log.note("agent \(hello.agentVersion) on \(hello.architecture), KIWI \(hello.kiwiVersion ?? "none")")
        }

        func run(_ argv: [String], cwd: String? = nil) async throws -> ExitStatus {
            try await agent.run(
                argv, cwd: cwd, onStdout: { log.standardOutput($0) }, onStderr: { log.standardError($0) })
        }
        func check(_ argv: [String], _ what: String) async throws {
            let status = try await run(argv)
            guard status.isSuccess else { throw BoxstackError(.guestFailed, "\(what) failed in the box (\(status)).") }
        }

        if let version = configuration.kiwiVersion {
            log.note("installing KIWI \(version) with pip")
            var pip = ["python3", "-m", "pip", "install", "--break-system-packages"]
            // pip in the box trusts what the host trusts: behind a TLS-intercepting proxy only the host's
            // bundle holds the proxy's CA.
            if let bundle = Self.hostCertificateBundle {
                try agent.writeFile(try Data(contentsOf: URL(fileURLWithPath: bundle)), to: GuestPaths.hostCertificates)
                pip += ["--cert", GuestPaths.hostCertificates]
            }
            try await check(pip + ["kiwi==\(version)"], "Installing KIWI \(version) with pip")
            try await check(["kiwi-ng", "--version"], "Running the KIWI installed with pip")
        }
        try await check(["rm", "-rf", GuestPaths.work], "Cleaning the box's work directory")
        try await check(["mkdir", "-p", GuestPaths.localTarget + "/build"], "Creating the box's work directory")
        if request.descriptionDirectory != nil {
            try await check(["cp", "-a", GuestPaths.description + "/.", GuestPaths.localDescription], "Copying the description")
        }
        if let stack, let exchangeDirectory = session.exchangeDirectory {
            log.note("stacking \(request.stashes.joined(separator: ", ")) into the box")
            try store.exportStack(stack, toTar: exchangeDirectory + "/stack.tar")
            try await check(["mkdir", "-p", GuestPaths.imageRoot], "Creating the image root")
            try agent.treeImport(root: GuestPaths.imageRoot, tarFile: BoxSession.guestExchangeDirectory + "/stack.tar")
            try? FileManager.default.removeItem(atPath: exchangeDirectory + "/stack.tar")
        }

        var kiwi = ["kiwi-ng"]
        if let type = configuration.kiwiType { kiwi += ["--type", type] }
        for profile in configuration.profiles { kiwi += ["--profile", profile] }
        kiwi += request.kiwiCommand
        if request.isStackbuild && request.descriptionDirectory == nil {
            kiwi += ["--root", GuestPaths.imageRoot]
        } else {
            kiwi += ["--description", GuestPaths.localDescription]
            if request.isStackbuild { kiwi.append("--allow-existing-root") }
        }
        kiwi += ["--target-dir", GuestPaths.localTarget] + request.options
        log.note("running " + kiwi.joined(separator: " "))
        let status = try await run(kiwi)
        guard status.isSuccess else {
            log.note("KIWI failed (\(status)); the log is \(request.targetDirectory)/boxstack.log")
            return exitCode(status)
        }

        try await check(
            ["kiwi-ng", "result", "bundle", "--target-dir", GuestPaths.localTarget, "--id", "0", "--bundle-dir", GuestPaths.target],
            "Bundling KIWI's results")
        try ResultFiles.normalizeModes(in: request.targetDirectory, sharing: options.sharing)
        // Never a success without a result: KIWI's bundle must have landed on the host during this run
        // (files left by an earlier run in the same directory do not count).
        guard ResultFiles.hasNewResults(in: request.targetDirectory, since: started) else {
            throw BoxstackError(
                .guestFailed,
                "KIWI reported success but no result reached \(request.targetDirectory); see boxstack.log there.")
        }

        if let keepRoot = configuration.keepRoot {
            log.note("stashing the root tree as \(keepRoot)")
            let result = try BoxedStash.keepRoot(keepRoot, session: session, guestRoot: GuestPaths.imageRoot, store: store)
            log.note(result.summary)
        }
        return 0
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
