import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A boxstack domain started by `DomainLauncher`.
public final class RunningDomain: @unchecked Sendable {
    public let domain: LibvirtDomain
    /// The spec it runs with (after any port retry, so `spec.network?.sshHostPort` is the real port).
    public let spec: DomainSpec

    init(domain: LibvirtDomain, spec: DomainSpec) {
        self.domain = domain
        self.spec = spec
    }

    public var name: String { spec.name }
    /// The port on 127.0.0.1 that reaches the guest's sshd.
    public var sshPort: Int? { spec.network?.sshHostPort }
    public var isActive: Bool { domain.isActive }

    /// Powers the domain off at once; idempotent.
    public func destroy() throws { try domain.destroy() }

    /// The last `lines` lines of the serial console, for error messages.
    public func consoleTail(lines: Int = 20) -> String { ConsoleLog.tail(of: spec.consoleLog, lines: lines) }
}

/// Starts transient domains.
public enum DomainLauncher {
    /// Defines and starts `spec` as a transient domain.
    ///
    /// The forwarded SSH port is picked by the OS before QEMU binds it, so another process can take it in
    /// between; when QEMU then cannot set up the forwarding, a new port is picked and the start retried.
    /// With `destroyOnClose` the domain ends with the connection (and so with the controller, even on SIGKILL).
    public static func start(
        _ spec: DomainSpec, on connection: LibvirtConnection, destroyOnClose: Bool = true, portAttempts: Int = 4
    ) throws -> RunningDomain {
        var spec = spec
        var attempt = 1
        while true {
            do {
                let domain = try connection.createTransientDomain(xml: spec.xml(), destroyOnClose: destroyOnClose)
                return RunningDomain(domain: domain, spec: spec)
            } catch let error as LibvirtCallError {
                if var network = spec.network, attempt < portAttempts, isPortConflict(error.message) {
                    network.sshHostPort = try LoopbackPort.ephemeral()
                    spec.network = network
                    attempt += 1
                    continue
                }
                let reason = error.message.split(whereSeparator: \.isNewline).joined(separator: " ")
                throw BoxstackError(
                    .processFailed,
                    "QEMU could not start the domain \(spec.name) through \(connection.uri): \(reason)",
                    details: ConsoleLog.tail(of: spec.consoleLog, lines: 20))
            }
        }
    }

    static func isPortConflict(_ message: String) -> Bool {
        message.contains("host forwarding rule") || message.contains("hostfwd")
    }
}

/// Per-run qcow2 overlays over the read-only box disk.
public enum DiskOverlay {
    /// Creates `overlay` backed by `base` (absolute), so the guest's writes never reach the box disk.
    public static func create(base: String, at overlay: String) throws {
        guard base.hasPrefix("/") else {
            throw BoxstackError(.invalidArgument, "the box disk path \(base) must be absolute for a qcow2 backing file.")
        }
        guard FileManager.default.fileExists(atPath: base) else {
            throw BoxstackError(.notFound, "the box disk \(base) does not exist; fetch the box again.")
        }
        let result = try Subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay])
        guard result.status.isSuccess else {
            throw BoxstackError(
                .processFailed, "cannot create the disk overlay \(overlay) on \(base) (qemu-img: \(result.status)).",
                details: result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// Ports on 127.0.0.1.
public enum LoopbackPort {
    /// A port the OS considers free right now: bind 127.0.0.1:0, read the port, close.
    public static func ephemeral() throws -> Int {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else {
            throw BoxstackError(.network, "cannot open a socket: \(String(cString: strerror(errno))).")
        }
        defer { close(socketDescriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(socketDescriptor, socketAddress, length) == 0 && getsockname(socketDescriptor, socketAddress, &length) == 0
            }
        }
        guard bound else {
            throw BoxstackError(.network, "cannot bind a port on 127.0.0.1: \(String(cString: strerror(errno))).")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The serial console log of a domain.
public enum ConsoleLog {
    /// The last `lines` non-empty lines of the log at `path`, with terminal escape sequences removed.
    public static func tail(of path: String, lines: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let window: UInt64 = 64 * 1024
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > window ? size - window : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        let text = String(decoding: data, as: UTF8.self)
            .replacingOccurrences(of: "\u{1B}\\[[0-9;?]*[A-Za-z]", with: "", options: .regularExpression)
            .replacingOccurrences(of: "\u{1B}[()][0-9A-Za-z]", with: "", options: .regularExpression)
            .replacingOccurrences(of: "\r", with: "")
        let kept = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        return kept.suffix(lines).joined(separator: "\n")
    }
}
