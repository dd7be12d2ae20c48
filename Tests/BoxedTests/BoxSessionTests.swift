import Boxed
import BoxstackCore
import Foundation
import Machine
import TestSupport
import Testing

/// A hypervisor that records the domains asked of it and plays the outcomes a test sets: a start
/// that fails (libvirt's message), a port that is taken once, a domain that dies at once.
final class RecordingHypervisor: Hypervisor, @unchecked Sendable {
    final class Domain: HypervisorDomain, @unchecked Sendable {
        let name: String
        let lock = NSLock()
        var active: Bool
        var destroyed = 0
        init(name: String, active: Bool) {
            self.name = name
            self.active = active
        }
        var isActive: Bool { lock.withLock { active } }
        func destroy() throws {
            lock.withLock {
                destroyed += 1
                active = false
            }
        }
        func save(to path: String) throws {
            try Data("saved \(name)".utf8).write(to: URL(fileURLWithPath: path))
            lock.withLock { active = false }
        }
    }

    let uri = "test:///recording"
    let lock = NSLock()
    var definitions: [String] = []
    var domains: [Domain] = []
    /// libvirt's messages for the next starts, one per start; an empty list starts domains.
    var startFailures: [String] = []
    var domainsStayActive = true

    func createTransientDomain(xml: String, destroyOnClose: Bool) throws -> any HypervisorDomain {
        try lock.withLock {
            definitions.append(xml)
            if !startFailures.isEmpty { throw LibvirtCallError(message: startFailures.removeFirst()) }
            let name = xml.firstMatch(of: /<name>([^<]+)<\/name>/).map { String($0.1) } ?? "?"
            let domain = Domain(name: name, active: domainsStayActive)
            domains.append(domain)
            return domain
        }
    }

    func restoreDomain(statePath: String, xml: String, name: String) throws -> any HypervisorDomain {
        try lock.withLock {
            definitions.append(xml)
            if !startFailures.isEmpty { throw LibvirtCallError(message: startFailures.removeFirst()) }
            let domain = Domain(name: name, active: domainsStayActive)
            domains.append(domain)
            return domain
        }
    }

    func domain(named name: String) -> (any HypervisorDomain)? { lock.withLock { domains.first { $0.name == name } } }
    func activeDomainNames(prefix: String) throws -> [String] {
        lock.withLock { domains.filter { $0.isActive && $0.name.hasPrefix(prefix) }.map(\.name) }
    }
}

@Suite struct BoxSessionTests {
    let directory: TemporaryDirectory
    let hypervisor = RecordingHypervisor()

    init() throws {
        directory = try TemporaryDirectory("session")
        try Subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", directory.file("box.qcow2"), "16M"]).check()
        for file in ["kernel", "initrd"] { try Data().write(to: URL(fileURLWithPath: directory.file(file))) }
    }

    private var runsDirectory: String { directory.file("runs") }

    /// A timeout far beyond any step of the fakes, so only the test that is about the timeout meets it.
    private func options(timeout: Duration = .seconds(300), warm: Bool = false) -> BoxSessionOptions {
        let image = BoxImage(
            name: "debian", architecture: .x86_64, kernel: directory.file("kernel"), initrd: directory.file("initrd"),
            disk: directory.file("box.qcow2"), kernelArguments: ["root=/dev/vda", "rw"], console: "ttyS0", memoryBytes: 1 << 30, cpus: 1)
        var options = BoxSessionOptions(image: image)
        options.hypervisor = hypervisor
        options.noAccel = true
        options.timeout = timeout
        options.warm = warm
        options.paths = Paths(environment: ["BOXSTACK_RUNS_DIR": runsDirectory, "BOXSTACK_CACHE_DIR": directory.file("cache")])
        return options
    }

    private func runDirectories() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: runsDirectory)) ?? []).filter { !$0.hasPrefix(".") && !$0.hasSuffix(".lock") }
    }

    @Test func aDomainThatDoesNotStartLeavesNothingBehind() async throws {
        hypervisor.startFailures = ["internal error: process exited while connecting to monitor"]
        let error = await #expect(throws: BoxstackError.self) { try await BoxSession.start(options()) }
        #expect(error?.message.contains("QEMU could not start the domain") == true)
        #expect(error?.message.contains("process exited while connecting to monitor") == true)
        #expect(runDirectories().isEmpty)
    }

    @Test func aTakenPortIsPickedAgain() async throws {
        hypervisor.startFailures = ["Could not set up host forwarding rule 'tcp:127.0.0.1:4000-:22'"]
        hypervisor.domainsStayActive = false
        await #expect(throws: BoxstackError.self) { try await BoxSession.start(options()) }
        #expect(hypervisor.definitions.count == 2)
        let ports = hypervisor.definitions.map { $0.firstMatch(of: /hostfwd=tcp:127\.0\.0\.1:(\d+)-:22/).map { String($0.1) } }
        #expect(ports.allSatisfy { $0 != nil })
    }

    @Test func aBoxThatDiesBeforeItsAgentAnswersIsReportedAndRemoved() async throws {
        hypervisor.domainsStayActive = false
        let error = await #expect(throws: BoxstackError.self) { try await BoxSession.start(options()) }
        #expect(error?.code == .guestFailed)
        #expect(error?.message.contains("stopped before its agent answered") == true)
        #expect(hypervisor.domains.count == 1)
        #expect(hypervisor.domains.allSatisfy { !$0.isActive })
        #expect(runDirectories().isEmpty)
    }

    @Test func aBoxWhoseAgentNeverAnswersTimesOutAndIsDestroyed() async throws {
        let error = await #expect(throws: BoxstackError.self) { try await BoxSession.start(options(timeout: .seconds(2))) }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("--timeout") == true)
        #expect(hypervisor.domains.first?.destroyed == 1)
        #expect(runDirectories().isEmpty)
    }

    @Test func theDomainIsTransientNamedForItsRunAndReachableOnlyOnLoopback() async throws {
        hypervisor.domainsStayActive = false
        _ = try? await BoxSession.start(options())
        let xml = try #require(hypervisor.definitions.first)
        #expect(xml.contains("<name>boxstack-"))
        #expect(xml.contains("hostfwd=tcp:127.0.0.1:"))
        #expect(xml.contains(directory.file("kernel")))
        // The guest writes to a per-run overlay in its run directory, never to the box disk.
        #expect(xml.contains(runsDirectory + "/"))
        #expect(xml.contains("overlay.qcow2"))
    }

    @Test func aWarmImageIsMadeUnderItsSlotsNameAndUUIDAndNamesItsRunInTheTitle() async throws {
        _ = try? await BoxSession.start(options(timeout: .seconds(2), warm: true))
        let xml = try #require(hypervisor.definitions.first)
        #expect(xml.contains("<name>boxstack-warm-"))
        #expect(xml.firstMatch(of: /<uuid>[0-9a-f-]{36}<\/uuid>/) != nil)
        #expect(xml.contains("<title>boxstack warm image "))
        // The image's disk is the slot's own overlay, never the box disk or a run's.
        #expect(xml.contains(directory.file("cache") + "/warm/"))
    }

    @Test func aBoxThatDiesWhileItsWarmImageIsMadeFailsAsAColdBootWouldAndLeavesNoImage() async throws {
        hypervisor.domainsStayActive = false
        let error = await #expect(throws: BoxstackError.self) { try await BoxSession.start(options(warm: true)) }
        #expect(error?.message.contains("stopped before its agent answered") == true)
        // Not booted a second time: a box that does not boot would not boot cold either.
        #expect(hypervisor.definitions.count == 1)
        #expect(runDirectories().isEmpty)
        let shapes = try FileManager.default.contentsOfDirectory(atPath: directory.file("cache/warm"))
        for shape in shapes {
            let slots = try FileManager.default.contentsOfDirectory(atPath: directory.file("cache/warm/\(shape)"))
            #expect(slots.allSatisfy { $0.hasSuffix(".lock") })
        }
    }
}
