import BoxstackCore
import Foundation
import Guest
import Machine
import Sharing

/// Warm starts (Docs/warm-boxes.md): the first run of a box shape boots it cold once and saves the
/// guest into a slot of the user's cache; every run then restores a slot, with its own overlay, port,
/// shares and run directory, and makes the restored guest its own before anything runs in it.
extension BoxSession {
    /// The seed files that make a box this run's own besides its keys: hostname, machine-id and host
    /// entropy. A cold boot installs them at boot, a warm start through the resume port.
    static func writeRunIdentity(into runDirectory: RunDirectory) throws {
        var generator = SystemRandomNumberGenerator()
        let machineID = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString
        let entropy = Data((0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try Data("\(runDirectory.domainName)\n".utf8).writeAtomically(to: runDirectory.seedDirectory + "/hostname", mode: 0o600)
        try Data("\(machineID)\n".utf8).writeAtomically(to: runDirectory.seedDirectory + "/machine-id", mode: 0o600)
        try entropy.writeAtomically(to: runDirectory.seedDirectory + "/entropy", mode: 0o600)
    }

    /// Starts the box from a warm image, making the image first when its slot has none. Returns false
    /// when the box must boot cold: every slot of the shape is busy, or the image could not be saved or
    /// restored (then it is discarded and the user told in one line). A box that fails to boot while its
    /// image is made fails the run as a cold boot would: booting it again would not help.
    func startWarm(_ spec: DomainSpec) async throws -> Bool {
        var spec = spec
        spec.serialChannel = SerialChannel(socketPath: runDirectory.resumeSocketPath, portName: ResumeChannel.portName)
        let key = WarmImageKey(image: options.image, spec: spec, agentProtocol: GuestAgent.protocolVersion)
        guard let slot = try WarmImageStore(paths: options.paths).acquireSlot(for: key) else {
            options.report("every warm slot of this box shape is in use, so this box boots cold")
            return false
        }
        adopt(nil, warmSlot: slot)
        // The slot's lock was free, so a domain under its name is what a killed run left running.
        try? connection.domain(named: slot.domainName)?.destroy()
        do {
            var record = slot.record
            if record == nil { record = try await makeWarmImage(spec, in: slot) }
            try await restore(spec, from: slot, record: record!)
        } catch let fallback as WarmStartFallback {
            slot.discard()
            abandonWarmStart()
            options.report("the warm image could not be used, so it was discarded and this box boots cold: \(fallback.reason)")
            return false
        } catch {
            if slot.record == nil { slot.discard() }
            throw error
        }
        try mountShares()
        return true
    }

    /// Boots the box cold under the slot's name with keys of the image's own (thrown away after the
    /// save), waits for its agent, starts its resume listener and saves it, with the disk as it is at that
    /// moment, into the slot. Nothing of the run is in it: the run's shares are mounted only after the
    /// restore, and its keys are installed then.
    private func makeWarmImage(_ spec: DomainSpec, in slot: WarmSlot) async throws -> WarmImageRecord {
        try slot.clear()
        options.report(
            "making a warm image of the \(options.image.name) box (\(options.image.architecture), \(accelerator.accelerator.domainType)): a cold boot, once for this box shape"
        )
        let seed = runDirectory.path + "/warm-seed"
        try FileManager.default.makeDirectory(seed, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: seed) }
        let hostKey = try SSHKeyPair.generateEd25519(privateKeyPath: seed + "/ssh_host_ed25519_key", comment: "boxstack-warm-guest")
        let clientKey = try SSHKeyPair.generateEd25519(privateKeyPath: seed + "/client_ed25519", comment: "boxstack-warm-controller")
        try Data((clientKey.publicKey + "\n").utf8).writeAtomically(to: seed + "/authorized_keys", mode: 0o600)
        try DiskOverlay.create(base: options.image.disk, at: slot.diskPath)

        var maker = spec
        maker.name = slot.domainName
        maker.uuid = UUID().uuidString.lowercased()
        maker.title = "boxstack warm image \(slot.key.hex.prefix(12)) slot \(slot.index)"
        maker.disk = slot.diskPath
        maker.ninePFilesystems = spec.ninePFilesystems.map { $0.tag == SeedShare.tag ? SeedShare.filesystem(hostDirectory: seed) : $0 }
        // The turn lasts until the save: saving is part of the boot's load on the host.
        let turn = try await takeBootTurn()
        defer { withExtendedLifetime(turn) {} }
        let domain = try DomainLauncher.start(maker, on: connection, destroyOnClose: true)
        adopt(domain, warmSlot: slot)
        let endpoint = SSHEndpoint(port: domain.sshPort ?? 0, privateKeyPath: clientKey.privateKeyPath, hostKey: hostKey.publicKey)
        let ssh = try await waitForSSH(endpoint, domain: domain, deadline: .now + options.timeout)
        try prepareForSave(GuestAgent(session: ssh))
        // libvirt creates the state file itself.
        let state = try AtomicFile.Staged(for: slot.statePath, create: false)
        do {
            try domain.domain.save(to: state.temporaryPath)
        } catch let error as LibvirtCallError {
            state.discard()
            throw WarmStartFallback(reason: "libvirt could not save the box: \(error.message)")
        }
        adopt(nil, warmSlot: slot)
        try state.commit()
        let record = WarmImageRecord(
            uuid: maker.uuid ?? "", key: slot.key.hex, layout: WarmImageKey.layoutVersion, agentProtocol: GuestAgent.protocolVersion,
            boxFiles: Dictionary(
                uniqueKeysWithValues: [options.image.kernel, options.image.initrd, options.image.disk].map {
                    ($0, WarmImageStore.fingerprint(of: $0))
                }),
            created: Date())
        try slot.writeRecord(record)
        return record
    }

    /// Checks the agent, starts the box's resume listener and waits until it answers on the resume port;
    /// then closes the session, on every path, so that no login is in the saved guest.
    private func prepareForSave(_ agent: GuestAgent) throws {
        defer { agent.session.close() }
        // Outside the fallback: a box whose agent does not answer fails a cold boot the same way.
        _ = try agent.hello()
        do {
            try agent.awaitResume()
            // The listener's Python start-up is part of this boot: on a loaded host it can take a minute.
            try ResumeChannel(socketPath: runDirectory.resumeSocketPath).ping(deadline: .now + options.timeout)
        } catch let error as BoxstackError where error.code != .interrupted {
            throw WarmStartFallback(reason: error.message)
        }
    }

    /// Restores the slot's guest with the run's overlay (on the slot's disk), port, shares, console and
    /// resume port; sends the run's clock and seed through that port, where the guest's listener sets the
    /// clock, installs the run's keys, hostname, machine-id and entropy and reseeds its random generator;
    /// then logs in with the run's own key, pinning the run's own host key. No key of the image is used.
    private func restore(_ spec: DomainSpec, from slot: WarmSlot, record: WarmImageRecord) async throws {
        try DiskOverlay.create(base: slot.diskPath, at: runDirectory.overlayPath)
        var run = spec
        run.name = slot.domainName
        run.uuid = record.uuid
        run.title = "boxstack run \(runDirectory.id)"
        run.disk = runDirectory.overlayPath
        try runDirectory.recordWarmDomain(named: slot.domainName, slotLockPath: slot.lockPath)
        options.report(
            "restoring the \(options.image.name) box (\(options.image.architecture), \(accelerator.accelerator.domainType)) from its warm image as \(run.name)"
        )
        do {
            let domain = try DomainLauncher.restore(run, from: slot.statePath, on: connection)
            adopt(domain, warmSlot: slot)
            // Generous: a restored box that is slow to answer on a loaded host is still far ahead of a cold boot.
            let deadline = ContinuousClock.now + min(options.timeout, .seconds(180))
            try await runOnOwnThread {
                try ResumeChannel(socketPath: self.runDirectory.resumeSocketPath)
                    .resume(clock: Date(), seedDirectory: self.runDirectory.seedDirectory, deadline: deadline)
            }
            try await logIn(deadline: deadline)
        } catch let error as BoxstackError where error.code != .interrupted {
            throw WarmStartFallback(reason: error.message)
        }
    }
}

/// A warm start that failed in a way a cold boot does not: the image is discarded and the box boots cold.
struct WarmStartFallback: Error {
    var reason: String
}
