import BoxstackCore
import Foundation
import Guest
import Machine
import Sharing

/// How to start a box.
public struct BoxSessionOptions: Sendable {
    public var image: BoxImage
    public var memoryBytes: Int64?
    public var cpus: Int?
    public var console: String?
    public var machine: String?
    public var cpuModel: String?
    public var noAccel = false
    /// False with `--no-snapshot`: the guest writes to the box disk itself.
    public var snapshot = true
    public var offline = false
    /// How long the box may take to answer through its agent.
    public var timeout: Duration = .seconds(300)
    public var connectURI: String?
    public var sharing: ShareKind = .ninePee
    /// Directories shared with the chosen backend.
    public var shares: [SharedPath] = []
    /// Also share the run's exchange directory over 9p, whatever the backend: bulk data (tar files)
    /// crosses there as one large file, never through the SSH channel or as many small 9p files.
    public var exchange = false
    /// Keep the domain when the controller ends (`--box-debug`); such a box boots cold.
    public var keepRunning = false
    /// Start from a warm image of this box shape (made by the first run that needs it) instead of a cold
    /// boot; false with `--cold`. Boxes with virtiofs shares, `--no-snapshot` or `--box-debug` boot cold.
    public var warm = true
    /// The hypervisor to run on; nil opens libvirt at `connectURI`.
    public var hypervisor: (any Hypervisor)?
    public var paths = Paths()
    /// Progress lines for the user ("booting box…").
    public var report: @Sendable (String) -> Void = { _ in }

    public init(image: BoxImage) { self.image = image }
}

/// A booted box whose agent answered and whose shares are mounted.
///
/// `start` unwinds everything it did when any step fails; `shutdown` is idempotent and is also
/// registered with `TeardownRegistry` so Ctrl-C and SIGTERM run it.
public final class BoxSession: @unchecked Sendable {
    public let runDirectory: RunDirectory
    public let connection: any Hypervisor
    public private(set) var domain: RunningDomain?
    public private(set) var agent: GuestAgent?
    public private(set) var hello: GuestAgentHello?
    public let endpointKey: SSHKeyPair
    public let hostKey: SSHKeyPair
    public let accelerator: AcceleratorChoice
    /// The host side of the exchange share (with `options.exchange`); the guest sees it at `guestExchangeDirectory`.
    public var exchangeDirectory: String? { options.exchange ? runDirectory.path + "/exchange" : nil }
    public static let exchangeTag = "boxstack-exchange"
    public static let guestExchangeDirectory = "/run/boxstack/exchange"
    let options: BoxSessionOptions
    let shareBackend: any ShareBackend
    let bootTurns: BootTurns
    private let state = LockedBox(State())
    private var teardownToken: UUID?

    private struct State {
        var bridges: [SFTPBridge] = []
        var shutDown = false
        var warmSlot: WarmSlot?
    }

    /// How this session's box started: from a warm image, or with a cold boot.
    public private(set) var startedWarm = false

    /// The SSH endpoint of the guest (valid once the domain runs).
    public var endpoint: SSHEndpoint? {
        guard let port = domain?.sshPort else { return nil }
        return SSHEndpoint(port: port, privateKeyPath: endpointKey.privateKeyPath, hostKey: hostKey.publicKey)
    }

    /// Boots the box, waits for its agent (bounded by `options.timeout`) and mounts the shares.
    public static func start(_ options: BoxSessionOptions) async throws -> BoxSession {
        let connection = try options.hypervisor ?? LibvirtConnection(uri: options.connectURI)
        try RunDirectory.collectGarbage(in: options.paths.runsDirectory, connection: connection)
        let runDirectory = try RunDirectory.create(under: options.paths.runsDirectory)
        let session: BoxSession
        do {
            try runDirectory.makeSubdirectories()
            if options.exchange { try FileManager.default.makeDirectory(runDirectory.path + "/exchange", mode: 0o700) }
            let hostKey = try SSHKeyPair.generateEd25519(
                privateKeyPath: runDirectory.seedDirectory + "/ssh_host_ed25519_key", comment: "boxstack-guest")
            let clientKey = try SSHKeyPair.generateEd25519(
                privateKeyPath: runDirectory.keysDirectory + "/id_ed25519", comment: "boxstack-controller")
            try Data((clientKey.publicKey + "\n").utf8).writeAtomically(
                to: runDirectory.seedDirectory + "/authorized_keys", mode: 0o600)
            try writeRunIdentity(into: runDirectory)
            let accelerator = AcceleratorSelector(cacheDirectory: options.paths.cacheDirectory)
                .choose(for: options.image.architecture, probeKernel: options.image.kernel, noAccel: options.noAccel)
            if let notice = accelerator.notice { options.report(notice) }
            let bootTurns = try BootTurns(paths: options.paths, accelerator: accelerator.accelerator)
            let backend = makeShareBackend(options.sharing, shares: options.shares, runDirectory: runDirectory)
            session = BoxSession(
                runDirectory: runDirectory, connection: connection, endpointKey: clientKey, hostKey: hostKey,
                accelerator: accelerator, bootTurns: bootTurns, options: options, shareBackend: backend)
        } catch {
            runDirectory.remove()
            throw error
        }
        session.teardownToken = TeardownRegistry.shared.register { session.shutdown() }
        do {
            try await session.boot()
            return session
        } catch {
            session.shutdown()
            throw error
        }
    }

    private init(
        runDirectory: RunDirectory, connection: any Hypervisor, endpointKey: SSHKeyPair, hostKey: SSHKeyPair,
        accelerator: AcceleratorChoice, bootTurns: BootTurns, options: BoxSessionOptions, shareBackend: any ShareBackend
    ) {
        self.runDirectory = runDirectory
        self.connection = connection
        self.endpointKey = endpointKey
        self.hostKey = hostKey
        self.accelerator = accelerator
        self.bootTurns = bootTurns
        self.options = options
        self.shareBackend = shareBackend
    }

    private func boot() async throws {
        var spec = try domainSpec()
        shareBackend.configure(&spec)
        try shareBackend.startHostSide()
        if options.warm, options.snapshot, !options.keepRunning {
            if !spec.vhostUserFilesystems.isEmpty {
                options.report("virtiofs shares keep QEMU from saving a guest, so this box boots cold")
            } else if try await startWarm(spec) {
                startedWarm = true
                return
            }
        }
        try await startCold(spec)
    }

    /// The run's domain: its name, paths and port; the disk is the run's overlay.
    private func domainSpec() throws -> DomainSpec {
        let image = options.image
        let console = options.console ?? image.console
        return DomainSpec(
            name: runDirectory.domainName, architecture: image.architecture, accelerator: accelerator.accelerator,
            memoryMiB: Int((options.memoryBytes ?? image.memoryBytes) >> 20), vcpus: options.cpus ?? image.cpus,
            kernel: image.kernel, initrd: image.initrd,
            kernelCommandLine: image.architecture.kernelCommandLine(image.kernelArguments, console: console),
            disk: options.snapshot ? runDirectory.overlayPath : image.disk, consoleLog: runDirectory.consoleLogPath,
            network: UserNetwork(sshHostPort: try LoopbackPort.ephemeral(), offline: options.offline),
            ninePFilesystems: [SeedShare.filesystem(hostDirectory: runDirectory.seedDirectory)]
                + (exchangeDirectory.map { [NinePFilesystem(hostPath: $0, tag: Self.exchangeTag)] } ?? []),
            machineOverride: options.machine, cpuOverride: options.cpuModel.map(CPUModel.init(option:)))
    }

    private func startCold(_ spec: DomainSpec) async throws {
        var spec = spec
        spec.title = "boxstack run \(runDirectory.id)"
        if options.snapshot { try DiskOverlay.create(base: options.image.disk, at: runDirectory.overlayPath) }
        let turn = try await takeBootTurn()
        defer { withExtendedLifetime(turn) {} }
        options.report(
            "booting the \(options.image.name) box (\(options.image.architecture), \(accelerator.accelerator.domainType)) as \(spec.name)")
        let domain = try DomainLauncher.start(spec, on: connection, destroyOnClose: !options.keepRunning)
        self.domain = domain
        if options.keepRunning { try runDirectory.markKept() }
        try await connectToAgent(deadline: .now + options.timeout)
    }

    /// Waits for this user's turn to boot (`BootTurns`); the turn lasts while the lock lives.
    func takeBootTurn() async throws -> FileLock {
        try await bootTurns.take(report: options.report)
    }

    /// Logs in with the run's own key, pinning the run's own host key, asks the agent for hello and
    /// mounts the shares.
    func connectToAgent(deadline: ContinuousClock.Instant) async throws {
        try await logIn(deadline: deadline)
        try mountShares()
    }

    func mountShares() throws {
        guard let agent, let endpoint else { throw BoxstackError(.internalError, "the box session has no agent.") }
        try mountShares(agent: agent, endpoint: endpoint)
    }

    /// Logs in with the run's own key, pinning the run's own host key, and asks the agent for hello.
    func logIn(deadline: ContinuousClock.Instant) async throws {
        guard let endpoint, let domain else { throw BoxstackError(.internalError, "the domain has no forwarded SSH port.") }
        let ssh = try await waitForSSH(endpoint, domain: domain, deadline: deadline)
        let agent = GuestAgent(session: ssh)
        self.agent = agent
        hello = try agent.hello()
    }

    /// Undoes a warm start that failed part way, so that the run can boot cold in the same run directory.
    func abandonWarmStart() {
        agent?.session.close()
        agent = nil
        hello = nil
        try? domain?.destroy()
        domain = nil
        state.withValue { $0.warmSlot }?.release()
        state.withValue { $0.warmSlot = nil }
        runDirectory.forgetWarmDomain()
        try? FileManager.default.removeItem(atPath: runDirectory.overlayPath)
    }

    /// Waits for the guest's sshd; fails early when the domain stops, and with the console's last lines
    /// when the deadline passes.
    func waitForSSH(_ endpoint: SSHEndpoint, domain: RunningDomain, deadline: ContinuousClock.Instant) async throws -> SSHSession {
        let consoleLog = domain.spec.consoleLog
        do {
            return try await SSHSession.waitUntilReachable(
                endpoint, deadline: deadline,
                whileWaiting: {
                    guard domain.isActive else {
                        throw BoxstackError(
                            .guestFailed, "The box stopped before its agent answered (it crashed, panicked or powered off).",
                            details: ConsoleLog.tail(of: consoleLog, lines: 20))
                    }
                })
        } catch let error as BoxstackError where error.code == .timeout {
            throw BoxstackError(
                .timeout,
                "The box did not reach its agent within \(Int(options.timeout.components.seconds)) s (--timeout); the console's last lines follow.",
                details: ConsoleLog.tail(of: consoleLog, lines: 20), cause: error)
        }
    }

    /// Records the domain the session runs, as soon as it runs (teardown and signals look for it).
    func adopt(_ domain: RunningDomain?, warmSlot: WarmSlot?) {
        self.domain = domain
        if let warmSlot { state.withValue { $0.warmSlot = warmSlot } }
    }

    private func mountShares(agent: GuestAgent, endpoint: SSHEndpoint) throws {
        if options.exchange { try agent.mount9p(tag: Self.exchangeTag, at: Self.guestExchangeDirectory) }
        for step in shareBackend.guestMountSteps() {
            switch step {
            case .agent(let arguments):
                let result = try agent.session.run(agent.commandLine(arguments[0], Array(arguments.dropFirst())))
                guard result.status.isSuccess else {
                    throw BoxstackError(
                        .guestFailed, "Mounting a \(shareBackend.kind.rawValue) share in the box failed (\(result.status)).",
                        details: result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))
                }
            case .sftpBridge(let hostDirectory, let guestDirectory):
                let bridge = SFTPBridge(endpoint: endpoint, hostDirectory: hostDirectory, guestDirectory: guestDirectory)
                try bridge.start()
                state.withValue { $0.bridges.append(bridge) }
                try waitForMount(agent: agent, guestDirectory: guestDirectory, bridge: bridge)
            }
        }
    }

    /// sshfs mounts in the background of its channel; wait until the mount point is a mount.
    private func waitForMount(agent: GuestAgent, guestDirectory: String, bridge: SFTPBridge) throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let result = try agent.session.run(ShellQuote.join(["mountpoint", "-q", guestDirectory]))
            if result.status.isSuccess { return }
            Thread.sleep(forTimeInterval: 0.3)
        }
        throw BoxstackError(
            .guestFailed, "The sshfs share \(guestDirectory) did not mount in the box within 60 s.",
            details: bridge.diagnostics.joined(separator: "\n"))
    }

    /// The lines a user types to get into a box kept with `--box-debug`.
    public var debugInstructions: String {
        guard let port = domain?.sshPort else { return "" }
        let knownHosts = runDirectory.keysDirectory + "/known_hosts"
        let line = "[127.0.0.1]:\(port) " + hostKey.publicKey.split(separator: " ").prefix(2).joined(separator: " ") + "\n"
        try? Data(line.utf8).writeAtomically(to: knownHosts, mode: 0o600)
        return """
            ssh -i \(endpointKey.privateKeyPath) -o UserKnownHostsFile=\(knownHosts) -o StrictHostKeyChecking=yes -p \(port) root@127.0.0.1
            virsh -c \(connection.uri) console \(runDirectory.domainName)
            (remove it later with: virsh -c \(connection.uri) destroy \(runDirectory.domainName); boxstack gc)
            """
    }

    /// Unmounts, stops host-side share processes, destroys the domain and deletes the run directory.
    /// With `keepRunning` only the controller's handles go; the domain and its run directory stay.
    public func shutdown() {
        let bridges: [SFTPBridge]? = state.withValue { state in
            if state.shutDown { return nil }
            state.shutDown = true
            return state.bridges
        }
        guard let bridges else { return }
        if let teardownToken { TeardownRegistry.shared.unregister(teardownToken) }
        // Closed here even for a kept box: a session left to its deinit may be freed on another
        // thread while the process exits, after libcrypto has torn down its locks.
        for bridge in bridges { bridge.stop() }
        agent?.session.close()
        if options.keepRunning { return }
        // Looked up by name too: a signal can arrive after libvirt started the domain but before
        // `domain` was assigned.
        let warmSlot = state.withValue { $0.warmSlot }
        if let domain {
            try? domain.destroy()
        } else {
            try? connection.domain(named: warmSlot?.domainName ?? runDirectory.domainName)?.destroy()
        }
        shareBackend.stop()
        runDirectory.remove()
        warmSlot?.release()
    }
}
