import BoxstackCore
import Foundation
import Machine
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A domain that needs no box: no disk, no kernel, so it sits in the firmware until destroyed.
func firmwareOnlySpec(run: RunDirectory, port: Int) -> DomainSpec {
    DomainSpec(
        name: run.domainName, architecture: .x86_64, accelerator: .tcg, memoryMiB: 256, vcpus: 1,
        kernel: nil, initrd: nil, disk: nil, consoleLog: run.consoleLogPath,
        network: UserNetwork(sshHostPort: port))
}

/// Real libvirt through the C API; virsh only observes.
@Suite(.serialized, .enabled(if: LibvirtTestHost.isAvailable, "needs a reachable libvirt daemon (LibvirtTestHost.unavailableReason says why not)"))
struct LibvirtLifecycleTests {
    @Test func transientDomainIsListedWhileRunningAndGoneAfterDestroy() throws {
        let runs = try TemporaryDirectory("runs")
        let run = try RunDirectory.create(under: runs.path)
        defer { run.remove() }
        let connection = try LibvirtConnection(uri: LibvirtTestHost.uri)
        let domain = try DomainLauncher.start(firmwareOnlySpec(run: run, port: try LoopbackPort.ephemeral()), on: connection)
        defer { try? domain.destroy() }

        #expect(domain.isActive)
        #expect(try connection.activeDomainNames().contains(run.domainName))
        #expect(try LibvirtTestHost.runningDomainNames().contains(run.domainName))
        // Transient: libvirt keeps no definition of it.
        let persistent = try LibvirtTestHost.virsh(["list", "--all", "--persistent", "--name"]).check().output
        #expect(!persistent.contains(run.domainName))

        try domain.destroy()
        #expect(!domain.isActive)
        #expect(try !connection.activeDomainNames().contains(run.domainName))
        #expect(try !LibvirtTestHost.runningDomainNames().contains(run.domainName))
        try domain.destroy()
    }

    /// The OS-picked port can be taken before QEMU binds it; the launcher then retries with a new one.
    @Test func takenForwardPortIsReplacedByAFreshOne() throws {
        let runs = try TemporaryDirectory("runs")
        let run = try RunDirectory.create(under: runs.path)
        defer { run.remove() }
        let squatter = try ListeningSocket()
        defer { squatter.close() }
        let connection = try LibvirtConnection(uri: LibvirtTestHost.uri)
        let domain = try DomainLauncher.start(firmwareOnlySpec(run: run, port: squatter.port), on: connection)
        defer { try? domain.destroy() }
        #expect(domain.isActive)
        let port = try #require(domain.sshPort)
        #expect(port != squatter.port)
        // QEMU listens on the new port, on loopback only.
        let listening = try Subprocess.run(["ss", "-Htln", "sport = :\(port)"]).check().output
        #expect(listening.contains("127.0.0.1:\(port)"))
    }

    @Test func qemuFailureIsOneSentenceWithTheConsoleTail() throws {
        let runs = try TemporaryDirectory("runs")
        let run = try RunDirectory.create(under: runs.path)
        defer { run.remove() }
        var spec = firmwareOnlySpec(run: run, port: try LoopbackPort.ephemeral())
        spec.kernel = "/nonexistent/debian-box.x86_64.kernel"
        let connection = try LibvirtConnection(uri: LibvirtTestHost.uri)
        #expect {
            _ = try DomainLauncher.start(spec, on: connection)
        } throws: { error in
            guard let error = error as? BoxstackError else { return false }
            return error.message.hasPrefix("QEMU could not start the domain \(run.domainName) through \(LibvirtTestHost.uri): ")
                && error.message.contains("/nonexistent/debian-box.x86_64.kernel") && !error.message.contains("\n")
        }
        #expect(try !connection.activeDomainNames().contains(run.domainName))
    }

    /// What a SIGKILLed controller leaves (a free lock and, with --box-debug, its domain) is removed by gc;
    /// a live run next to it is not touched.
    @Test func garbageCollectionDestroysTheDomainOfADeadRunOnly() throws {
        let runs = try TemporaryDirectory("runs")
        let connection = try LibvirtConnection(uri: LibvirtTestHost.uri)
        let live = try RunDirectory.create(under: runs.path)
        defer { live.remove() }
        let liveDomain = try DomainLauncher.start(firmwareOnlySpec(run: live, port: try LoopbackPort.ephemeral()), on: connection)
        defer { try? liveDomain.destroy() }

        // The dead run's object is released at the end of this closure, freeing its lock as a killed
        // controller's exit would; its domain was started to outlive the connection, as with --box-debug.
        let (deadID, deadDomain) = try {
            let dead = try RunDirectory.create(under: runs.path)
            let domain = try DomainLauncher.start(
                firmwareOnlySpec(run: dead, port: try LoopbackPort.ephemeral()), on: connection, destroyOnClose: false)
            return (dead.id, domain)
        }()
        defer { try? deadDomain.destroy() }

        // A process forked elsewhere in this test run holds a copy of every descriptor until it execs,
        // the dead run's lock included; on a loaded machine that can take a moment, so ask until it is free.
        var removed: [String] = []
        let deadline = ContinuousClock.now + .seconds(120)
        repeat {
            removed = try RunDirectory.collectGarbage(in: runs.path, connection: connection)
            if removed.isEmpty { Thread.sleep(forTimeInterval: 0.2) }
        } while removed.isEmpty && ContinuousClock.now < deadline
        #expect(removed == [deadID])
        #expect(!deadDomain.isActive)
        #expect(liveDomain.isActive)
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(try LibvirtTestHost.runningDomainNames().contains(live.domainName))
    }
}

@Suite struct LibvirtConnectionTests {
    @Test func unreachableDaemonGivesOneClearSentence() {
        #expect {
            _ = try LibvirtConnection(uri: "qemu+unix:///session?socket=/nonexistent/libvirt-sock")
        } throws: { error in
            "\(error)".hasPrefix("cannot connect to qemu+unix:///session?socket=/nonexistent/libvirt-sock: ")
        }
    }

    @Test func defaultURIIsSessionForUsersAndSystemForRoot() {
        #expect(LibvirtConnection.defaultURI(userID: 1000) == "qemu:///session")
        #expect(LibvirtConnection.defaultURI(userID: 0) == "qemu:///system")
    }
}

/// A TCP listener on an OS-picked loopback port, to occupy a port.
final class ListeningSocket {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && listen(descriptor, 1) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard ok else { throw BoxstackError(.network, "cannot listen on 127.0.0.1") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(descriptor) }
}
