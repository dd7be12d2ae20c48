import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A boxstack domain started by `DomainLauncher`.
public final class RunningDomain: @unchecked Sendable {
    public let domain: any HypervisorDomain
    /// The spec it runs with (after any port retry, so `spec.network?.sshHostPort` is the real port).
    public let spec: DomainSpec

    init(domain: any HypervisorDomain, spec: DomainSpec) {
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
