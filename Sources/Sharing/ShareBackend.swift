import BoxstackCore
import Foundation
import Guest
import Machine

/// A host directory that a run shares with its guest, mounted at `guestPath`.
public struct SharedPath: Sendable, Equatable {
    public var hostPath: String
    public var guestPath: String

    public init(hostPath: String, guestPath: String? = nil) {
        self.hostPath = hostPath
        self.guestPath = guestPath ?? hostPath
    }
}

/// The sharing backends (`--9p-sharing`, `--virtiofs-sharing`, `--sshfs-sharing`).
public enum ShareKind: String, Sendable, CaseIterable {
    case ninePee = "9p"
    case virtiofs
    case sshfs
}

/// One step the controller runs in the guest, through the agent, after the agent answers, to mount a share.
public enum GuestMountStep: Sendable, Equatable {
    /// `boxstack-agent mount 9p TAG GUESTDIR MSIZE`.
    case ninePee(tag: String, guestDirectory: String, msize: Int)
    /// `boxstack-agent mount virtiofs TAG GUESTDIR`.
    case virtiofs(tag: String, guestDirectory: String)
    /// `boxstack-agent sshfs-mount HOSTDIR GUESTDIR`: the channel stays open for the life of the mount and is
    /// joined to a local `sftp-server` serving `hostDirectory` (Guest's `SFTPBridge`).
    case sftpBridge(hostDirectory: String, guestDirectory: String)

    /// Runs the step. For sshfs it returns the started bridge, which the caller keeps and stops at teardown.
    public func perform(agent: GuestAgent, endpoint: SSHEndpoint) throws -> SFTPBridge? {
        switch self {
        case .ninePee(let tag, let guestDirectory, let msize):
            try agent.mount9p(tag: tag, at: guestDirectory, msize: msize)
        case .virtiofs(let tag, let guestDirectory):
            try agent.mountVirtiofs(tag: tag, at: guestDirectory)
        case .sftpBridge(let hostDirectory, let guestDirectory):
            let bridge = SFTPBridge(
                endpoint: endpoint, hostDirectory: hostDirectory, guestDirectory: guestDirectory, agentCommand: agent.agentCommand)
            try bridge.start()
            return bridge
        }
        return nil
    }
}

/// A way to share host directories with a boxstack guest.
///
/// The controller calls, in order: `configure` (adds devices to the domain before it is defined),
/// `startHostSide` (host processes the devices connect to, before the domain starts), then runs
/// `guestMountSteps` through the agent, and `stop` on every teardown path.
public protocol ShareBackend: Sendable {
    var kind: ShareKind { get }
    var shares: [SharedPath] { get }
    /// Adds this backend's devices to the domain.
    func configure(_ spec: inout DomainSpec)
    /// Starts the host-side processes; throws a clear error (suggesting another backend) when it cannot.
    func startHostSide() throws
    /// What the guest runs to mount every share, in order.
    func guestMountSteps() -> [GuestMountStep]
    /// Stops the host-side processes; safe to call more than once.
    func stop()
}

extension ShareBackend {
    public func startHostSide() throws {}
    public func stop() {}

    /// The device tag of share number `index` (9p and virtiofs tags are limited to 31 bytes).
    static func tag(_ index: Int) -> String { "boxstack-share\(index)" }
}

/// Chooses the backend for `kind`.
public func makeShareBackend(
    _ kind: ShareKind, shares: [SharedPath], runDirectory: RunDirectory, ninePMsize: Int = NinePShareBackend.defaultMsize
) -> any ShareBackend {
    switch kind {
    case .ninePee: return NinePShareBackend(shares: shares, msize: ninePMsize)
    case .virtiofs: return VirtiofsShareBackend(shares: shares, socketsDirectory: runDirectory.socketsDirectory)
    case .sshfs: return SSHFSShareBackend(shares: shares)
    }
}

/// The per-run seed share of the guest contract: read-only 9p, tag `boxstack-seed`.
public enum SeedShare {
    public static let tag = "boxstack-seed"

    public static func filesystem(hostDirectory: String) -> NinePFilesystem {
        NinePFilesystem(hostPath: hostDirectory, tag: tag, readOnly: true)
    }
}
