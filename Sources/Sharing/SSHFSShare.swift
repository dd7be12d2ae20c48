import BoxstackCore
import Foundation
import Machine

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
