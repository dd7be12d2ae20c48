import Boxed
import BoxstackCore
import Foundation
import Guest
import Machine
import Sharing
import TestSupport

/// The box the VM tier boots: `BOXSTACK_TEST_BOX_DIR` names a directory built by `Scripts/build-box`.
///
/// Without it the VM tests fail (they never pass silently); `Scripts/test` builds the box and sets it.
enum TestBox {
    static func image(arch: String = "x86_64", kernelArguments: [String] = ["root=/dev/vda", "rw"]) throws -> BoxImage {
        let variable = arch == "x86_64" ? "BOXSTACK_TEST_BOX_DIR" : "BOXSTACK_TEST_BOX_DIR_\(arch.uppercased())"
        guard let directory = ProcessInfo.processInfo.environment[variable] else {
            throw BoxstackError(.notFound, "\(variable) is not set: run the VM tier through Scripts/test, which builds the box.")
        }
        let architecture = try MachineArchitecture.named(arch)
        func file(_ suffix: String) throws -> String {
            let path = "\(directory)/debian-box.\(arch).\(suffix)"
            guard FileManager.default.fileExists(atPath: path) else {
                throw BoxstackError(.notFound, "\(path) is missing: rebuild the box with Scripts/build-box debian --arch \(arch).")
            }
            return path
        }
        return BoxImage(
            name: "debian", architecture: architecture, kernel: try file("kernel"), initrd: try file("initrd"),
            disk: try file("qcow2"), kernelArguments: kernelArguments, console: architecture.console,
            memoryBytes: 2 << 30, cpus: 2)
    }

    /// Options for a test run, with its own runs directory and cache so tests never touch the user's.
    /// The cache is the test cache shared by the run's tests, or with `privateCache` one in `workspace`
    /// that no other test touches (its warm images are this test's alone).
    static func options(
        image: BoxImage, workspace: TemporaryDirectory, sharing: ShareKind = .ninePee, shares: [SharedPath] = [],
        timeout: Duration = .seconds(420), privateCache: Bool = false
    ) -> BoxSessionOptions {
        var options = BoxSessionOptions(image: image)
        options.sharing = sharing
        options.shares = shares
        options.timeout = timeout
        var environment = ProcessInfo.processInfo.environment
        let sharedCache = privateCache ? nil : environment["BOXSTACK_TEST_CACHE_DIR"]
        environment["BOXSTACK_CACHE_DIR"] = sharedCache ?? workspace.file("cache")
        environment["BOXSTACK_RUNS_DIR"] = workspace.file("runs")
        options.paths = Paths(environment: environment)
        return options
    }
}

/// One box booted for the checks that do not need a VM of their own (a boot costs about a minute
/// under TCG). It shares `hostDirectory` at `/mnt/host` over 9p and has the exchange share.
actor SharedBox {
    static let shared = SharedBox()

    private var started: Task<(BoxSession, TemporaryDirectory), any Error>?

    func session() async throws -> (session: BoxSession, hostDirectory: String) {
        if started == nil {
            started = Task {
                let workspace = try TemporaryDirectory("shared-box")
                let hostDirectory = workspace.file("shared")
                try FileManager.default.createDirectory(atPath: hostDirectory, withIntermediateDirectories: true)
                var options = TestBox.options(
                    image: try TestBox.image(), workspace: workspace,
                    shares: [SharedPath(hostPath: hostDirectory, guestPath: "/mnt/host")])
                options.exchange = true
                let session = try await BoxSession.start(options)
                ProcessTeardown.add { session.shutdown() }
                return (session, workspace)
            }
        }
        let (session, workspace) = try await started!.value
        return (session, workspace.file("shared"))
    }
}

/// Shuts shared boxes down when the test process exits.
enum ProcessTeardown {
    private static let actions = LockedBox<[@Sendable () -> Void]>([])
    private static let installed = LockedBox(false)

    static func add(_ action: @escaping @Sendable () -> Void) {
        actions.withValue { $0.append(action) }
        let first = installed.withValue { installed -> Bool in
            defer { installed = true }
            return !installed
        }
        if first { atexit { ProcessTeardown.runAll() } }
    }

    static func runAll() {
        for action in actions.withValue({ actions in
            defer { actions = [] }
            return actions
        }) { action() }
    }
}

extension GuestAgent {
    /// Runs `argv` and collects its output.
    func collect(_ argv: [String]) async throws -> (status: ExitStatus, stdout: String, stderr: String) {
        let out = LockedBox(Data())
        let err = LockedBox(Data())
        let status = try await run(
            argv, onStdout: { data in out.withValue { $0.append(data) } },
            onStderr: { data in err.withValue { $0.append(data) } })
        return (status, String(decoding: out.value, as: UTF8.self), String(decoding: err.value, as: UTF8.self))
    }
}
