import BoxstackCore
import Foundation
import Machine

/// Everything a warm image is valid for: the box's files, and the domain it was saved from with the
/// per-run parts (name, paths, port) left out, so architecture, memory, CPUs, machine, CPU model,
/// accelerator, kernel command line and the set of shared devices are all in it; plus the guest agent's
/// protocol and the layout of boxstack's domains. Any difference makes another image.
public struct WarmImageKey: Sendable, Equatable {
    /// The text the key is the digest of.
    public let text: String
    /// SHA-256 of `text`, in hex: the name of the shape's directory.
    public let hex: String

    /// Raised whenever `DomainSpec` or the warm start changes what a saved guest depends on.
    static let layoutVersion = 3

    public init(image: BoxImage, spec: DomainSpec, agentProtocol: Int) {
        var shape = spec
        shape.name = "warm"
        shape.uuid = nil
        shape.title = nil
        shape.kernel = spec.kernel.map { _ in "kernel" }
        shape.initrd = spec.initrd.map { _ in "initrd" }
        shape.disk = spec.disk.map { _ in "disk" }
        shape.consoleLog = "console"
        shape.network?.sshHostPort = 0
        shape.serialChannel?.socketPath = "socket"
        shape.ninePFilesystems = spec.ninePFilesystems.map { NinePFilesystem(hostPath: "share", tag: $0.tag, readOnly: $0.readOnly) }
        let lines = [
            "layout=\(Self.layoutVersion)",
            "agent-protocol=\(agentProtocol)",
            "box-files=\(Self.identity(of: image).joined(separator: " "))",
            "domain=\(shape.xml())",
        ]
        text = lines.joined(separator: "\n")
        hex = ContentDigest.of(Data(text.utf8)).hex
    }

    /// The box files' digests when the cache verified them; otherwise what `stat` says of each file.
    static func identity(of image: BoxImage) -> [String] {
        if image.fileDigests.count == 3 { return image.fileDigests }
        return [image.kernel, image.initrd, image.disk].map(WarmImageStore.fingerprint(of:))
    }
}
