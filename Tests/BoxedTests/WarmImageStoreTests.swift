import BoxstackCore
import Foundation
import Guest
import Machine
import TestSupport
import Testing

@testable import Boxed

@Suite struct WarmImageStoreTests {
    let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory("warm")
        for file in ["kernel", "initrd", "disk"] { try Data(file.utf8).write(to: URL(fileURLWithPath: directory.file(file))) }
    }

    private var image: BoxImage {
        BoxImage(
            name: "debian", architecture: .x86_64, kernel: directory.file("kernel"), initrd: directory.file("initrd"),
            disk: directory.file("disk"), kernelArguments: ["root=/dev/vda"], console: "ttyS0", memoryBytes: 1 << 30, cpus: 2)
    }

    private func spec(run: String = "a", port: Int = 4000, memoryMiB: Int = 1024, tags: [String] = ["boxstack-seed"]) -> DomainSpec {
        DomainSpec(
            name: "boxstack-\(run)", architecture: .x86_64, accelerator: .tcg, memoryMiB: memoryMiB, vcpus: 2,
            kernel: image.kernel, initrd: image.initrd, disk: "/runs/\(run)/overlay.qcow2", consoleLog: "/runs/\(run)/console.log",
            network: UserNetwork(sshHostPort: port),
            ninePFilesystems: tags.map { NinePFilesystem(hostPath: "/runs/\(run)/\($0)", tag: $0) },
            serialChannel: SerialChannel(socketPath: "/runs/\(run)/sockets/resume.sock", portName: "org.boxstack.resume"))
    }

    private var store: WarmImageStore {
        WarmImageStore(paths: Paths(environment: ["BOXSTACK_CACHE_DIR": directory.file("cache")]))
    }

    @Test func runsOfOneShapeShareAKeyWhateverTheirNamesPathsAndPorts() {
        let first = WarmImageKey(image: image, spec: spec(run: "a", port: 4000), agentProtocol: 3)
        let second = WarmImageKey(image: image, spec: spec(run: "b", port: 5000), agentProtocol: 3)
        #expect(first == second)
    }

    @Test func everythingTheSavedGuestDependsOnMakesAnotherKey() throws {
        let base = WarmImageKey(image: image, spec: spec(), agentProtocol: 3)
        var otherCPU = spec()
        otherCPU.cpuOverride = .named("Nehalem")
        var otherMachine = spec()
        otherMachine.machineOverride = "pc"
        var kvm = spec()
        kvm.accelerator = .kvm
        var offline = spec()
        offline.network?.offline = true
        var noResumePort = spec()
        noResumePort.serialChannel = nil
        var digests = image
        digests.fileDigests = ["sha256:1", "sha256:2", "sha256:3"]
        let others = [
            WarmImageKey(image: image, spec: spec(memoryMiB: 2048), agentProtocol: 3),
            WarmImageKey(image: image, spec: spec(tags: ["boxstack-seed", "boxstack-exchange"]), agentProtocol: 3),
            WarmImageKey(image: image, spec: otherCPU, agentProtocol: 3),
            WarmImageKey(image: image, spec: otherMachine, agentProtocol: 3),
            WarmImageKey(image: image, spec: kvm, agentProtocol: 3),
            WarmImageKey(image: image, spec: offline, agentProtocol: 3),
            WarmImageKey(image: image, spec: noResumePort, agentProtocol: 3),
            WarmImageKey(image: image, spec: spec(), agentProtocol: 4),
            WarmImageKey(image: digests, spec: spec(), agentProtocol: 3),
        ]
        #expect(Set(others.map(\.hex)).count == others.count)
        #expect(!others.contains(base))
        // A box file replaced in place (a box update) changes the key too.
        Thread.sleep(forTimeInterval: 0.01)
        try Data("new kernel".utf8).write(to: URL(fileURLWithPath: directory.file("kernel")))
        #expect(WarmImageKey(image: image, spec: spec(), agentProtocol: 3) != base)
    }

    @Test func concurrentRunsGetSlotsOfTheirOwnUntilEveryOneIsTaken() throws {
        let key = WarmImageKey(image: image, spec: spec(), agentProtocol: 3)
        var slots: [WarmSlot] = []
        for _ in 0..<WarmImageStore.slotsPerShape { slots.append(try #require(try store.acquireSlot(for: key))) }
        #expect(Set(slots.map(\.domainName)).count == WarmImageStore.slotsPerShape)
        #expect(try store.acquireSlot(for: key) == nil)
        slots[3].release()
        #expect(try store.acquireSlot(for: key)?.index == 3)
    }

    @Test func slotsOfOneShapeInTwoCachesHaveDomainsOfTheirOwnNames() throws {
        let key = WarmImageKey(image: image, spec: spec(), agentProtocol: 3)
        let other = WarmImageStore(paths: Paths(environment: ["BOXSTACK_CACHE_DIR": directory.file("other-cache")]))
        let first = try #require(try store.acquireSlot(for: key))
        let second = try #require(try other.acquireSlot(for: key))
        #expect(first.index == second.index)
        #expect(first.domainName != second.domainName)
        #expect(first.domainName.hasPrefix(RunDirectory.domainPrefix))
        first.release()

        // One cache reached through a symbolic link is the same cache: its slots keep their names.
        try FileManager.default.createSymbolicLink(atPath: directory.file("linked-cache"), withDestinationPath: directory.file("cache"))
        let linked = WarmImageStore(paths: Paths(environment: ["BOXSTACK_CACHE_DIR": directory.file("linked-cache")]))
        let throughLink = try #require(try linked.acquireSlot(for: key))
        #expect(throughLink.index == first.index)
        #expect(throughLink.domainName == first.domainName)
    }

    @Test func aSlotWithAnImageIsPreferredAndAHalfMadeOneIsNotAnImage() throws {
        let key = WarmImageKey(image: image, spec: spec(), agentProtocol: 3)
        let busy = try #require(try store.acquireSlot(for: key))
        let made = try #require(try store.acquireSlot(for: key))
        try fill(made, key: key)
        made.release()
        let halfMade = try #require(try store.acquireSlot(for: key))
        try halfMade.clear()
        _ = try AtomicFile.Staged(for: halfMade.statePath)
        #expect(halfMade.record == nil)
        halfMade.release()
        #expect(try store.acquireSlot(for: key)?.index == made.index)
        withExtendedLifetime(busy) {}
    }

    @Test func gcRemovesStaleAndHalfMadeImagesAndKeepsCurrentAndBusyOnes() throws {
        let key = WarmImageKey(image: image, spec: spec(), agentProtocol: 3)
        let current = try #require(try store.acquireSlot(for: key))
        try fill(current, key: key)
        let busyStale = try #require(try store.acquireSlot(for: key))
        try fill(busyStale, key: key, diskFingerprint: "changed")
        let stale = try #require(try store.acquireSlot(for: key))
        try fill(stale, key: key, diskFingerprint: "changed")
        let halfMade = try #require(try store.acquireSlot(for: key))
        try halfMade.clear()
        for slot in [current, stale, halfMade] { slot.release() }

        let removed = try collectGarbage(expecting: 2)
        #expect(Set(removed) == ["\(key.hex)/slot-\(stale.index)", "\(key.hex)/slot-\(halfMade.index)"])
        #expect(current.record != nil)
        #expect(busyStale.record != nil)
        #expect(store.list().count == 2)

        busyStale.release()
        #expect(try collectGarbage(expecting: 2, all: true).count == 2)
        #expect(store.list().isEmpty)
    }

    /// A process forked elsewhere in this test run holds a copy of every descriptor until it execs, the
    /// slots' locks included; on a loaded machine that can take a moment, so ask until it is free.
    private func collectGarbage(expecting count: Int, all: Bool = false) throws -> [String] {
        var removed: [String] = []
        let deadline = ContinuousClock.now + .seconds(60)
        repeat {
            removed += try store.collectGarbage(all: all)
            if removed.count < count { Thread.sleep(forTimeInterval: 0.2) }
        } while removed.count < count && ContinuousClock.now < deadline
        return removed
    }

    private func fill(_ slot: WarmSlot, key: WarmImageKey, diskFingerprint: String? = nil) throws {
        try slot.clear()
        for path in [slot.statePath, slot.diskPath] { try Data("x".utf8).write(to: URL(fileURLWithPath: path)) }
        var files = Dictionary(uniqueKeysWithValues: [image.kernel, image.initrd, image.disk].map { ($0, WarmImageStore.fingerprint(of: $0)) })
        if let diskFingerprint { files[image.disk] = diskFingerprint }
        try slot.writeRecord(
            WarmImageRecord(
                uuid: UUID().uuidString, key: key.hex, layout: WarmImageKey.layoutVersion, agentProtocol: GuestAgent.protocolVersion,
                boxFiles: files, created: Date()))
    }
}
