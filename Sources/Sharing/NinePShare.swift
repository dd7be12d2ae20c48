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
