import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Starts transient domains, cold or from a saved state.
public enum DomainLauncher {
    /// Defines and starts `spec` as a transient domain.
    ///
    /// The forwarded SSH port is picked by the OS before QEMU binds it, so another process can take it in
    /// between; when QEMU then cannot set up the forwarding, a new port is picked and the start retried.
    /// With `destroyOnClose` the domain ends with the connection (and so with the controller, even on SIGKILL).
    public static func start(
        _ spec: DomainSpec, on connection: any Hypervisor, destroyOnClose: Bool = true, portAttempts: Int = 4
    ) throws -> RunningDomain {
        try withFreePort(spec, on: connection, doing: "start", portAttempts: portAttempts) { spec in
            try connection.createTransientDomain(xml: spec.xml(), destroyOnClose: destroyOnClose)
        }
    }

    /// Restores the guest saved in `statePath` as `spec` (which must keep the saved name, UUID and
    /// devices), with the same port retry as `start`. A restored domain does not end with the connection
    /// (libvirt has no such flag for restores): `RunDirectory.collectGarbage` removes it after a killed run.
    public static func restore(_ spec: DomainSpec, from statePath: String, on connection: any Hypervisor, portAttempts: Int = 4)
        throws -> RunningDomain
    {
        try withFreePort(spec, on: connection, doing: "restore", portAttempts: portAttempts) { spec in
            try connection.restoreDomain(statePath: statePath, xml: spec.xml(), name: spec.name)
        }
    }

    private static func withFreePort(
        _ spec: DomainSpec, on connection: any Hypervisor, doing verb: String, portAttempts: Int,
        _ body: (DomainSpec) throws -> any HypervisorDomain
    ) throws -> RunningDomain {
        var spec = spec
        var attempt = 1
        while true {
            do {
                return RunningDomain(domain: try body(spec), spec: spec)
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
                    "QEMU could not \(verb) the domain \(spec.name) through \(connection.uri): \(reason)",
                    details: ConsoleLog.tail(of: spec.consoleLog, lines: 20))
            }
        }
    }

    static func isPortConflict(_ message: String) -> Bool {
        message.contains("host forwarding rule") || message.contains("hostfwd")
    }
}
