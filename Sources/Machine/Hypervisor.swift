/// What boxstack asks of a hypervisor: define and start a transient domain, save and restore one, look
/// one up, list the running ones, destroy. `LibvirtConnection` is the one that ships; Tests/BoxedTests drives
/// `BoxSession` against a recording fake.
public protocol Hypervisor: Sendable {
    /// The URI the connection was opened with, e.g. `qemu:///session`.
    var uri: String { get }
    /// Defines and starts a transient domain from `xml`; throws `LibvirtCallError` with libvirt's message.
    func createTransientDomain(xml: String, destroyOnClose: Bool) throws -> any HypervisorDomain
    /// Starts the domain `name` from the state file `statePath`, running, with `xml` as its definition;
    /// throws `LibvirtCallError` with libvirt's message.
    func restoreDomain(statePath: String, xml: String, name: String) throws -> any HypervisorDomain
    /// The domain called `name`, or nil when there is none.
    func domain(named name: String) -> (any HypervisorDomain)?
    /// Names of the running domains whose names start with `prefix`.
    func activeDomainNames(prefix: String) throws -> [String]
}

/// One domain of a `Hypervisor`.
public protocol HypervisorDomain: Sendable {
    var name: String { get }
    /// True while the domain runs.
    var isActive: Bool { get }
    /// Stops the domain at once; idempotent.
    func destroy() throws
    /// Writes the guest's state to `path` and stops the domain; throws `LibvirtCallError`.
    func save(to path: String) throws
}

extension Hypervisor {
    /// Names of the running boxstack domains.
    public func activeDomainNames() throws -> [String] { try activeDomainNames(prefix: "boxstack-") }
}

extension LibvirtConnection: Hypervisor {
    public func createTransientDomain(xml: String, destroyOnClose: Bool) throws -> any HypervisorDomain {
        try createLibvirtDomain(xml: xml, destroyOnClose: destroyOnClose)
    }

    public func restoreDomain(statePath: String, xml: String, name: String) throws -> any HypervisorDomain {
        try restoreLibvirtDomain(statePath: statePath, xml: xml, name: name)
    }

    public func domain(named name: String) -> (any HypervisorDomain)? { libvirtDomain(named: name) }
}

extension LibvirtDomain: HypervisorDomain {}
