import BoxstackCore
import Foundation
import OCI
import Registry
import TestSupport
import Testing

/// Registries that stall or trickle are given up on within the configured times, with errors that
/// name the registry and what was being transferred; healthy transfers are not cut short. One test
/// at a time, so that the timings do not depend on how busy the suite's own tests keep the machine.
@Suite(.serialized, .timeLimit(.minutes(1))) struct RegistryTimeoutTests {
    /// Short enough that each fault ends in seconds.
    static let short = RegistryTimeouts(stall: .seconds(2), requestDeadline: .seconds(30), blobDeadline: .seconds(30))

    /// Runs `body`, which must throw a `BoxstackError`, and returns that error and how long it took.
    func failure(_ body: () async throws -> Void) async -> (error: BoxstackError?, elapsed: Duration) {
        let started = ContinuousClock.now
        let error = await #expect(throws: BoxstackError.self) { try await body() }
        return (error, ContinuousClock.now - started)
    }

    @Test func manifestStalledAfterItsHeadersTimesOut() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, fault: .stallManifest)
        let (error, elapsed) = await failure {
            _ = try await RegistryClient.withClient(registry: registry.address, timeouts: Self.short) { client in
                try await client.manifest(repository: "app", reference: "v1")
            }
        }
        #expect(error?.code == .timeout)
        #expect(
            error?.message.contains("the registry \(registry.address) stalled while fetching the manifest app:v1: nothing moved in 2 s") == true,
            "\(error?.message ?? "")")
        #expect(error?.message.contains(RegistryTimeouts.stallVariable) == true)
        #expect(elapsed >= .seconds(2) && elapsed < .seconds(60), "\(elapsed)")
    }

    @Test func trickledManifestEndsAtTheRequestDeadline() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, fault: .trickleManifest)
        // A stall interval far longer than the deadline, so only the deadline can end it.
        let timeouts = RegistryTimeouts(stall: .seconds(50), requestDeadline: .seconds(3))
        let (error, elapsed) = await failure {
            _ = try await RegistryClient.withClient(registry: registry.address, timeouts: timeouts) { client in
                try await client.manifest(repository: "app", reference: "v1")
            }
        }
        #expect(error?.code == .timeout)
        #expect(
            error?.message.contains("the registry \(registry.address) did not finish fetching the manifest app:v1 within 3 s") == true,
            "\(error?.message ?? "")")
        #expect(error?.message.contains(RegistryTimeouts.requestDeadlineVariable) == true)
        #expect(elapsed >= .seconds(3) && elapsed < .seconds(60), "\(elapsed)")
    }

    @Test func trickledManifestIsAStall() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, fault: .trickleManifest)
        let (error, elapsed) = await failure {
            _ = try await RegistryClient.withClient(registry: registry.address, timeouts: Self.short) { client in
                try await client.manifest(repository: "app", reference: "v1")
            }
        }
        #expect(error?.code == .timeout)
        #expect(
            error?.message.contains("stalled while fetching the manifest app:v1: only") == true, "\(error?.message ?? "")")
        #expect(elapsed < .seconds(60), "\(elapsed)")
    }

    @Test(arguments: [FaultRegistry.Fault.stallBlob, .trickleBlob])
    func blobThatStallsOrTricklesTimesOutAndLeavesTheLayoutAsItWas(_ fault: FaultRegistry.Fault) async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, fault: fault)
        let target = try OCILayout.create(at: directory.file("target"))
        let before = try TestImages.snapshot(target.path)
        let (error, elapsed) = await failure {
            _ = try await RegistryClient.withClient(registry: registry.address, timeouts: Self.short) { client in
                try await ImageTransfer(client: client, parallelism: 1, showProgress: false)
                    .pull(reference: ImageReference(parsing: "\(registry.address)/app:v1"), into: target, tag: "v1")
            }
        }
        #expect(error?.code == .timeout)
        #expect(
            error?.message.contains("the registry \(registry.address) stalled while downloading the blob sha256:") == true,
            "\(error?.message ?? "")")
        #expect(elapsed < .seconds(60), "\(elapsed)")
        #expect(try TestImages.snapshot(target.path) == before)
    }

    @Test func uploadTheRegistryStopsReadingTimesOut() async throws {
        let directory = try TemporaryDirectory()
        let served = try OCILayout.create(at: directory.file("served"))
        let registry = try FaultRegistry(layout: served.path, fault: .stallUpload)
        // Larger than what the loopback socket buffers take in before the sender must wait.
        let blob = directory.file("blob")
        try Data(count: 48 << 20).write(to: URL(fileURLWithPath: blob))
        let (digest, size) = try ContentDigest.ofFile(blob)
        let (error, elapsed) = await failure {
            _ = try await RegistryClient.withClient(registry: registry.address, timeouts: Self.short) { client in
                try await client.uploadBlob(repository: "app", digest: digest, size: size, from: blob)
            }
        }
        #expect(error?.code == .timeout)
        #expect(
            error?.message.contains("the registry \(registry.address) stalled while uploading the blob \(digest)") == true,
            "\(error?.message ?? "")")
        #expect(elapsed < .seconds(60), "\(elapsed)")
        // The abandoned session was cancelled.
        #expect(try registry.requests().contains { $0.method == "DELETE" })
    }

    @Test func healthyTransfersAreNotCutShort() async throws {
        let directory = try TemporaryDirectory()
        let source = try TestImages.makeRaw(at: directory.file("source"), tag: "v1", layerSize: 4 << 20)
        let served = try OCILayout.create(at: directory.file("served"))
        let registry = try FaultRegistry(layout: served.path)
        let reference = try ImageReference(parsing: "\(registry.address)/app:v1")
        let target = try OCILayout.create(at: directory.file("target"))
        let pulled = try await RegistryClient.withClient(registry: registry.address, timeouts: Self.short) { client in
            let transfer = ImageTransfer(client: client, showProgress: false)
            try await transfer.push(layout: source, tag: "v1", to: reference)
            return try await transfer.pull(reference: reference, into: target, tag: "v1")
        }
        #expect(pulled.digest == (try source.descriptor(tag: "v1"))?.digest)
    }

    @Test func timeoutsComeFromTheEnvironment() throws {
        #expect(try RegistryTimeouts.fromEnvironment([:]) == RegistryTimeouts())
        let configured = try RegistryTimeouts.fromEnvironment([
            RegistryTimeouts.stallVariable: "2.5", RegistryTimeouts.requestDeadlineVariable: "30",
        ])
        #expect(configured == RegistryTimeouts(stall: .milliseconds(2500), requestDeadline: .seconds(30)))
        for bad in ["", "soon", "0", "-3", "inf"] {
            let error = #expect(throws: BoxstackError.self) {
                try RegistryTimeouts.fromEnvironment([RegistryTimeouts.stallVariable: bad])
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix("\(RegistryTimeouts.stallVariable) must be a positive number of seconds") == true)
        }
    }
}
