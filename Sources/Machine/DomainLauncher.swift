import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Starts transient domains.
public enum DomainLauncher {
    /// Defines and starts `spec` as a transient domain.
    ///
    /// The forwarded SSH port is picked by the OS before QEMU binds it, so another process can take it in
    /// between; when QEMU then cannot set up the forwarding, a new port is picked and the start retried.
    /// With `destroyOnClose` the domain ends with the connection (and so with the controller, even on SIGKILL).
    public static func start(
        _ spec: DomainSpec, on connection: any Hypervisor, destroyOnClose: Bool = true, portAttempts: Int = 4
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
