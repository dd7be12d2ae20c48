import BoxstackCore
import Foundation
import Machine

/// 9p (virtio-9p, `accessmode='mapped'`): the default, works for non-root users with no host helper.
public struct NinePShareBackend: ShareBackend {
    public let shares: [SharedPath]
    /// The guest's `msize`: the largest 9p message. The kernel caps it at 512000 with QEMU 7.2; that
    /// is best for the large files that cross the share (bundles, layer tars): against upstream
    /// boxbuild's kernel default (`trans=virtio,version=9p2000.L`) it writes 500 MB in 0.81 and reads
    /// in 0.55 of the time, at 1.09-1.16 for trees of small files (Scripts/bench/share, MSIZES=...).
    public let msize: Int

    public static let defaultMsize = 512_000

    public init(shares: [SharedPath], msize: Int = defaultMsize) {
        self.shares = shares
        self.msize = msize
    }

    public var kind: ShareKind { .ninePee }

    public func configure(_ spec: inout DomainSpec) {
        for (index, share) in shares.enumerated() {
            spec.ninePFilesystems.append(NinePFilesystem(hostPath: share.hostPath, tag: Self.tag(index)))
        }
    }

    public func guestMountSteps() -> [GuestMountStep] {
        shares.enumerated().map { index, share in
            .agent(arguments: ["mount", "9p", Self.tag(index), share.guestPath, String(msize)])
        }
    }
}

/// sshfs: the guest runs `sshfs -o passive` over an agent channel that the controller connects to a local
/// `sftp-server`; no host sshd, no key in `authorized_keys`, no domain devices.
public struct SSHFSShareBackend: ShareBackend {
    public let shares: [SharedPath]

    public init(shares: [SharedPath]) { self.shares = shares }

    public var kind: ShareKind { .sshfs }

    public func configure(_ spec: inout DomainSpec) {}

    public func guestMountSteps() -> [GuestMountStep] {
        shares.map { .sftpBridge(hostDirectory: $0.hostPath, guestDirectory: $0.guestPath) }
    }
}
