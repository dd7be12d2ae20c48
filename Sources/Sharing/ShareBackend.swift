import BoxstackCore
import Foundation
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

/// One step the controller runs in the guest, after the agent answers, to mount a share.
public enum GuestMountStep: Sendable, Equatable {
    /// An agent invocation that mounts and exits, e.g. `["mount", "9p", TAG, DIR, MSIZE]`.
    case agent(arguments: [String])
    /// `sshfs-mount HOSTDIR GUESTDIR`: the agent's channel stays open for the life of the mount and is
    /// connected to a local `sftp-server` serving `hostDirectory` (Guest's `SFTPBridge`).
    case sftpBridge(hostDirectory: String, guestDirectory: String)
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
