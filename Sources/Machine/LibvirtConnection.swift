import BoxstackCore
import CLibvirt
import Foundation
import XML

#if canImport(Glibc)
    import Glibc
#endif

/// An open connection to a libvirt daemon, through libvirt's C API.
///
/// libvirt connections are thread-safe, so one connection may be shared by several tasks.
/// Error details are read from `virGetLastError`, which is thread-local: every call that can fail is
/// made and checked synchronously on the same thread.
public final class LibvirtConnection: @unchecked Sendable {
    let pointer: virConnectPtr
    /// The URI this connection was opened with, e.g. `qemu:///session`.
    public let uri: String

    /// `qemu:///system` for root, `qemu:///session` for everybody else.
    public static func defaultURI(userID: uid_t = geteuid()) -> String {
        userID == 0 ? "qemu:///system" : "qemu:///session"
    }

    /// Opens `uri` (the default for the current user when nil).
    public init(uri: String? = nil) throws {
        LibvirtConnection.setUp
        let uri = uri ?? LibvirtConnection.defaultURI()
        guard let pointer = virConnectOpen(uri) else {
            throw BoxstackError(
                .unsupported,
                "cannot connect to \(uri): \(LibvirtConnection.lastErrorMessage()); \(LibvirtConnection.connectionHint(for: uri))")
        }
        self.pointer = pointer
        self.uri = uri
    }

    deinit { virConnectClose(pointer) }

    /// True for a session (per-user) daemon, where QEMU runs as the connecting user.
    public var isSession: Bool { uri.contains("/session") }

    /// The hypervisor's domain types for `arch` that libvirt reports in its capabilities (`qemu`, `kvm`).
    public func domainTypes(arch: String) throws -> [String] {
        guard let text = virConnectGetCapabilities(pointer) else {
            throw BoxstackError(.unsupported, "cannot read the capabilities of \(uri): \(LibvirtConnection.lastErrorMessage()).")
        }
        defer { free(text) }
        let document = try XML.XMLDocument(data: Data(String(cString: text).utf8), name: "the libvirt capabilities")
        return document.strings("/capabilities/guest[arch/@name='\(arch)']/arch/domain/@type")
    }

    /// Defines and starts a transient domain from `xml`.
    ///
    /// With `destroyOnClose` libvirt kills the domain when this connection closes, which includes the
    /// controller being killed with SIGKILL: nothing keeps running without an owner.
    public func createLibvirtDomain(xml: String, destroyOnClose: Bool) throws -> LibvirtDomain {
        let flags = destroyOnClose ? UInt32(VIR_DOMAIN_START_AUTODESTROY.rawValue) : 0
        guard let domain = virDomainCreateXML(pointer, xml, flags) else {
            throw LibvirtCallError(message: LibvirtConnection.lastErrorMessage())
        }
        return LibvirtDomain(pointer: domain, connection: self)
    }

    /// Starts a domain from a state file `LibvirtDomain.save` wrote, running, with `xml` in place of the
    /// saved definition: libvirt accepts only changes that keep the guest's hardware as it was (file paths,
    /// QEMU arguments, the title), never another name, UUID or device.
    public func restoreLibvirtDomain(statePath: String, xml: String, name: String) throws -> LibvirtDomain {
        guard virDomainRestoreFlags(pointer, statePath, xml, UInt32(VIR_DOMAIN_SAVE_RUNNING.rawValue)) == 0 else {
            throw LibvirtCallError(message: LibvirtConnection.lastErrorMessage())
        }
        guard let domain = libvirtDomain(named: name) else {
            throw LibvirtCallError(message: "the domain \(name) restored from \(statePath) is not there")
        }
        return domain
    }

    /// The domain called `name`, or nil when there is none.
    public func libvirtDomain(named name: String) -> LibvirtDomain? {
        guard let domain = virDomainLookupByName(pointer, name) else {
            virResetLastError()
            return nil
        }
        return LibvirtDomain(pointer: domain, connection: self)
    }

    /// Names of the running domains whose names start with `prefix`, sorted.
    public func activeDomainNames(prefix: String) throws -> [String] {
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(pointer, &list, UInt32(VIR_CONNECT_LIST_DOMAINS_ACTIVE.rawValue))
        guard count >= 0, let list else {
            throw BoxstackError(.unsupported, "cannot list the domains of \(uri): \(LibvirtConnection.lastErrorMessage()).")
        }
        defer { free(list) }
        var names: [String] = []
        for index in 0..<Int(count) {
            guard let domain = list[index] else { continue }
            if let name = virDomainGetName(domain) { names.append(String(cString: name)) }
            virDomainFree(domain)
        }
        return names.filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// The message of the last libvirt error on this thread.
    static func lastErrorMessage() -> String {
        guard let error = virGetLastError(), let message = error.pointee.message else { return "unknown libvirt error" }
        let text = String(cString: message)
        virResetLastError()
        return text
    }

    private static func connectionHint(for uri: String) -> String {
        if uri.hasSuffix("/session") {
            return "is libvirt-daemon installed (it provides /usr/sbin/libvirtd, which the session starts on demand)?"
        }
        if uri.hasSuffix("/system") {
            return "is libvirtd running (package libvirt-daemon-system), or pass --connect qemu:///session?"
        }
        return "check the URI given to --connect."
    }

    /// Initializes libvirt once per process and stops it from printing errors to stderr itself:
    /// boxstack turns them into one sentence of its own.
    private static let setUp: Void = {
        virInitialize()
        virSetErrorFunc(nil) { _, _ in }
    }()
}

/// A libvirt call failed; `message` is libvirt's own text (callers turn it into a sentence).
/// A libvirt call that failed, with libvirt's message.
public struct LibvirtCallError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) { self.message = message }
}

/// A handle on one libvirt domain.
public final class LibvirtDomain: @unchecked Sendable {
    let pointer: virDomainPtr
    /// Kept so the connection outlives every domain handle made from it.
    public let connection: LibvirtConnection

    init(pointer: virDomainPtr, connection: LibvirtConnection) {
        self.pointer = pointer
        self.connection = connection
    }

    deinit { virDomainFree(pointer) }

    public var name: String { virDomainGetName(pointer).map { String(cString: $0) } ?? "" }

    /// True while the domain runs; a transient domain that stopped no longer exists, which is false too.
    public var isActive: Bool {
        let active = virDomainIsActive(pointer)
        if active < 0 { virResetLastError() }
        return active == 1
    }

    /// Stops the domain at once (power cut). Doing it again, or on a domain that already ended, is fine.
    public func destroy() throws {
        guard isActive else { return }
        if virDomainDestroy(pointer) != 0 {
            let message = LibvirtConnection.lastErrorMessage()
            guard isActive else { return }
            throw BoxstackError(.processFailed, "cannot stop the domain \(name): \(message).")
        }
    }

    /// Saves the running guest's memory and device state to `path` and stops the domain; the guest
    /// continues from that moment when the file is restored.
    public func save(to path: String) throws {
        guard virDomainSave(pointer, path) == 0 else {
            throw LibvirtCallError(message: LibvirtConnection.lastErrorMessage())
        }
    }

    /// The domain's live XML (with the addresses and aliases libvirt filled in).
    public func xmlDescription() throws -> String {
        guard let text = virDomainGetXMLDesc(pointer, 0) else {
            throw BoxstackError(.processFailed, "cannot read the XML of \(name): \(LibvirtConnection.lastErrorMessage()).")
        }
        defer { free(text) }
        return String(cString: text)
    }
}
