import BoxstackCore
import Foundation
import Machine
import TestSupport
import Testing

@Suite struct AcceleratorTests {
    @Test func foreignArchitectureRunsUnderTCGWithANotice() throws {
        let cache = try TemporaryDirectory("accel")
        let foreign: MachineArchitecture = MachineArchitecture.host == .aarch64 ? .x86_64 : .aarch64
        let choice = AcceleratorSelector(cacheDirectory: cache.path, environment: [:]).choose(for: foreign, probeKernel: "/unused")
        #expect(choice.accelerator == .tcg)
        #expect(choice.notice?.contains("runs under TCG emulation") == true)
    }

    @Test func noAccelFlagAndEnvironmentForceTCGWithoutNotice() throws {
        let cache = try TemporaryDirectory("accel")
        let selector = AcceleratorSelector(cacheDirectory: cache.path, kvmDevice: "/dev/null", environment: [:])
        #expect(selector.choose(for: .host, probeKernel: "/unused", noAccel: true) == AcceleratorChoice(accelerator: .tcg, notice: nil))
        let fromEnvironment = AcceleratorSelector(cacheDirectory: cache.path, kvmDevice: "/dev/null", environment: ["BOXSTACK_NO_ACCEL": "1"])
        #expect(fromEnvironment.choose(for: .host, probeKernel: "/unused").accelerator == .tcg)
    }

    @Test func missingKVMDeviceFallsBackToTCG() throws {
        let cache = try TemporaryDirectory("accel")
        let choice = AcceleratorSelector(cacheDirectory: cache.path, kvmDevice: "/nonexistent/kvm", environment: [:])
            .choose(for: .host, probeKernel: "/unused")
        #expect(choice.accelerator == .tcg)
        #expect(
            choice.notice
                == "notice: /nonexistent/kvm does not exist (the kvm module is not loaded, or this machine has no hardware virtualization), so the box runs under TCG emulation, which is slower."
        )
    }

    /// Joining the device's group helps only when the group may read and write it.
    @Test func theNoticeSaysWhatMakesTheDeviceUsable() throws {
        let directory = try TemporaryDirectory("accel")
        let device = directory.file("kvm")
        try Data().write(to: URL(fileURLWithPath: device))
        chmod(device, 0o660)
        let groupName = String(cString: try #require(getgrgid(getgid())).pointee.gr_name)
        let groupWritable = AcceleratorSelector.whyUnusable(device)
        #expect(groupWritable == "is not usable by this user (add yourself to group \(groupName) and log in again to fix it)")
        chmod(device, 0o600)
        let ownerOnly = AcceleratorSelector.whyUnusable(device)
        #expect(ownerOnly.contains("mode 600, group \(groupName): only its owner can use it"))
        #expect(ownerOnly.contains(#"MODE="0660""#))
    }

    /// The probe's verdict is cached per host boot, so later runs pay nothing for it.
    @Test func probeVerdictIsCachedPerBoot() throws {
        let cache = try TemporaryDirectory("accel")
        let bootID = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let verdictFile = cache.file("kvm-probe-\(MachineArchitecture.host.name)-\(bootID)")
        // /dev/null stands in for a read-write /dev/kvm; the kernel path is never used because the verdict is cached.
        let selector = AcceleratorSelector(cacheDirectory: cache.path, kvmDevice: "/dev/null", environment: [:])
        try Data("kvm\n".utf8).write(to: URL(fileURLWithPath: verdictFile))
        #expect(selector.choose(for: .host, probeKernel: "/nonexistent").accelerator == .kvm)
        try Data("tcg\n".utf8).write(to: URL(fileURLWithPath: verdictFile))
        let fallback = selector.choose(for: .host, probeKernel: "/nonexistent")
        #expect(fallback.accelerator == .tcg)
        #expect(fallback.notice?.contains("did not boot under KVM") == true)
    }

    /// The real probe boots the box kernel under KVM for a bounded time and gives a verdict that holds
    /// for the rest of the host's boot. Which verdict depends on the host (this project's CI machines
    /// have a /dev/kvm that hangs guests, a healthy host has a working one), so the test checks that
    /// it comes, that TCG always comes with a notice, and that the verdict is cached.
    @Test(.enabled(if: LibvirtTestHost.boxFile("kernel") != nil, "needs the built debian box kernel"))
    func realProbeGivesACachedVerdict() throws {
        let kernel = try #require(LibvirtTestHost.boxFile("kernel"))
        let cache = try TemporaryDirectory("accel")
        let selector = AcceleratorSelector(cacheDirectory: cache.path, environment: [:])
        let choice = selector.choose(for: .x86_64, probeKernel: kernel)
        if choice.accelerator == .tcg { #expect(choice.notice != nil) }
        let bootID = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if FileManager.default.isWritableFile(atPath: "/dev/kvm") {
            #expect(FileManager.default.fileExists(atPath: cache.file("kvm-probe-x86_64-\(bootID)")))
        }
        #expect(selector.choose(for: .x86_64, probeKernel: "/nonexistent").accelerator == choice.accelerator)
    }
}
