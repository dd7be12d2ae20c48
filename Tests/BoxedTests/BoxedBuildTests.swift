import BoxstackCore
import Foundation
import Guest
import Kiwi
import Machine
import Stash
import TestSupport
import Testing

@testable import Boxed

/// A guest agent that records every command and answers from a script: the exit status per command
/// (matched by its first words), and the delivery step (`kiwi-ng result bundle`, or the `find` that copies
/// KIWI's target files) writes a result into the target directory the way it reaches the host through the share.
final class RecordingGuest: GuestCommands, @unchecked Sendable {
    let lock = NSLock()
    var commands: [[String]] = []
    var imports: [(root: String, tarFile: String)] = []
    var statuses: [String: BoxstackCore.ExitStatus] = [:]
    /// Where the delivery step "writes" its result on the host; nil writes nothing.
    var bundleInto: String?
    /// Standard output per command (matched by its first words).
    var output: [String: String] = [:]
    /// File transfers that fail: "write" (writeFile), "import" (treeImport).
    var failingTransfers: Set<String> = []

    func run(
        _ argv: [String], cwd: String?, environment: [String: String],
        onStdout: @escaping @Sendable (Data) -> Void, onStderr: @escaping @Sendable (Data) -> Void
    ) async throws -> BoxstackCore.ExitStatus {
        lock.withLock { commands.append(argv) }
        if argv.starts(with: ["kiwi-ng", "result", "bundle"]) || argv.first == "find", let bundleInto {
            try Data("image".utf8).write(to: URL(fileURLWithPath: bundleInto + "/tiny.x86_64-1.0.0.tar.xz"))
        }
        let scripted = lock.withLock { output.first { argv.joined(separator: " ").hasPrefix($0.key) }?.value }
        onStdout(Data((scripted ?? "ran \(argv[0])\n").utf8))
        return lock.withLock { statuses.first { argv.joined(separator: " ").hasPrefix($0.key) }?.value }
            ?? BoxstackCore.ExitStatus.terminated(code: 0)
    }

    func writeFile(_ data: Data, to path: String) throws {
        lock.withLock { commands.append(["write", path]) }
        if failingTransfers.contains("write") { throw BoxstackError(.guestFailed, "the agent could not write \(path)") }
    }
    func treeManifest(root: String) throws -> Data { Data() }
    func treeExport(root: String, listFile: String, outputFile: String) throws {}
    func treeImport(root: String, tarFile: String) throws {
        lock.withLock { imports.append((root, tarFile)) }
        if failingTransfers.contains("import") { throw BoxstackError(.guestFailed, "the agent could not import \(tarFile)") }
    }
}

/// A booted box that only counts its teardowns.
final class RecordingMachine: BoxedMachine, @unchecked Sendable {
    let recordingGuest: RecordingGuest
    let exchangeDirectory: String?
    private let lock = NSLock()
    private(set) var shutdowns = 0

    init(guest: RecordingGuest, exchangeDirectory: String?) {
        recordingGuest = guest
        self.exchangeDirectory = exchangeDirectory
    }

    var guest: any GuestCommands { recordingGuest }
    var hello: GuestAgentHello? { GuestAgentHello(agentVersion: GuestAgent.protocolVersion, architecture: "x86_64", kiwiVersion: "9.24.56") }
    var architecture: MachineArchitecture { .x86_64 }
    var debugInstructions: String { "ssh ..." }
    func shutdown() { lock.withLock { shutdowns += 1 } }
}

/// Hands out one recording machine and remembers the options it was started with.
final class RecordingLauncher: BoxLauncher, @unchecked Sendable {
    let machine: RecordingMachine
    var failure: BoxstackError?
    private(set) var started: [BoxSessionOptions] = []

    init(machine: RecordingMachine) { self.machine = machine }

    func start(_ options: BoxSessionOptions) async throws -> any BoxedMachine {
        started.append(options)
        if let failure { throw failure }
        return machine
    }
}

@Suite struct BoxedBuildTests {
    let directory: TemporaryDirectory
    let target: String
    let description: String
    let guest = RecordingGuest()

    init() throws {
        directory = try TemporaryDirectory("boxed")
        target = directory.file("target")
        description = directory.file("description")
        try TreeFixture.shell("cp -a \(repositoryRoot)/Tests/Fixtures/tiny-debian/. .", in: description)
        guest.bundleInto = target
    }

    private func configuration(_ kiwiArguments: [String]) throws -> BoxedBuildConfiguration {
        let request = try KiwiBuildRequest.parse(kiwiArguments, currentDirectory: directory.path)
        let image = BoxImage(
            name: "debian", architecture: .x86_64, kernel: "/k", initrd: "/i", disk: "/d", kernelArguments: ["root=/dev/vda"],
            console: "ttyS0", memoryBytes: 1 << 30, cpus: 1)
        return BoxedBuildConfiguration(session: BoxSessionOptions(image: image), request: request)
    }

    private func launcher(exchange: Bool = false) throws -> RecordingLauncher {
        let exchangeDirectory = exchange ? directory.file("exchange") : nil
        if let exchangeDirectory { try FileManager.default.createDirectory(atPath: exchangeDirectory, withIntermediateDirectories: true) }
        return RecordingLauncher(machine: RecordingMachine(guest: guest, exchangeDirectory: exchangeDirectory))
    }

    private var commandWords: [String] { guest.commands.map { $0.prefix(3).joined(separator: " ") } }

    @Test func aBuildRunsItsStepsInOrderAndTearsTheBoxDown() async throws {
        let launcher = try launcher()
        let code = try await BoxedBuild.run(try configuration(["--description", "description", "--target-dir", "target"]), launcher: launcher)
        #expect(code == 0)
        #expect(
            commandWords == [
                "rm -rf /var/tmp/boxstack", "mkdir -p /var/tmp/boxstack/target/build", "cp -a /run/boxstack/description/.",
                "kiwi-ng system build", "kiwi-ng result bundle",
            ])
        let kiwi = try #require(guest.commands.first { $0.starts(with: ["kiwi-ng", "system"]) })
        #expect(kiwi == ["kiwi-ng", "system", "build", "--description", "/var/tmp/boxstack/description", "--target-dir", "/var/tmp/boxstack/target"])
        #expect(launcher.machine.shutdowns == 1)
        let shares = try #require(launcher.started.first).shares.map(\.guestPath)
        #expect(shares == ["/run/boxstack/description", "/run/boxstack/target"])
        #expect(try #require(launcher.started.first).exchange == false)
        #expect(try String(contentsOfFile: target + "/boxstack.log", encoding: .utf8).contains("ran kiwi-ng"))
    }

    @Test func aBoxBuildRunsKiwiWithItsRuntimeConfigurationAndTakesTheTargetFiles() async throws {
        var configuration = try configuration(["--description", "description", "--target-dir", "target"])
        configuration.kiwiRuntimeConfiguration = "xz:\n  - options: -0\n"
        configuration.delivery = .targetFiles
        let code = try await BoxedBuild.run(configuration, launcher: try launcher())
        #expect(code == 0)
        #expect(commandWords.contains("write /var/tmp/boxstack/kiwi.yml"))
        #expect(!commandWords.contains("kiwi-ng result bundle"))
        let kiwi = try #require(guest.commands.first { $0.first == "kiwi-ng" })
        #expect(kiwi.prefix(5) == ["kiwi-ng", "--config", "/var/tmp/boxstack/kiwi.yml", "system", "build"])
        let copy = try #require(guest.commands.last)
        #expect(copy.starts(with: ["find", "/var/tmp/boxstack/target", "-maxdepth", "1", "-type", "f", "!", "-name", "*.tar.xz"]))
        #expect(copy.suffix(6) == ["cp", "--sparse=always", "-t", "/run/boxstack/target", "{}", "+"])
    }

    @Test func aBoxBuildWhoseKiwiLeftNoFilesIsNoSuccess() async throws {
        guest.bundleInto = nil
        var configuration = try configuration(["--description", "description", "--target-dir", "target"])
        configuration.delivery = .targetFiles
        let error = await #expect(throws: BoxstackError.self) { try await BoxedBuild.run(configuration, launcher: try launcher()) }
        #expect(error?.message.contains("no result reached") == true)
    }

    @Test func kiwisExitCodeIsReturnedAndNothingIsBundled() async throws {
        guest.statuses["kiwi-ng system build"] = BoxstackCore.ExitStatus.terminated(code: 3)
        let launcher = try launcher()
        let code = try await BoxedBuild.run(try configuration(["--description", "description", "--target-dir", "target"]), launcher: launcher)
        #expect(code == 3)
        #expect(!commandWords.contains("kiwi-ng result bundle"))
        #expect(launcher.machine.shutdowns == 1)
    }

    @Test func aSignalledKiwiReports128PlusTheSignal() async throws {
        guest.statuses["kiwi-ng system build"] = BoxstackCore.ExitStatus.signalled(signal: SIGKILL)
        let code = try await BoxedBuild.run(try configuration(["--description", "description", "--target-dir", "target"]), launcher: try launcher())
        #expect(code == 128 + SIGKILL)
    }

    @Test func noSuccessWithoutAResult() async throws {
        guest.bundleInto = nil
        let launcher = try launcher()
        let error = await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try configuration(["--description", "description", "--target-dir", "target"]), launcher: launcher)
        }
        #expect(error?.message.contains("no result reached") == true)
        #expect(launcher.machine.shutdowns == 1)
    }

    @Test(arguments: ["rm -rf", "mkdir -p", "cp -a", "kiwi-ng result bundle"])
    func aFailingStepStopsTheRunAndTearsTheBoxDown(step: String) async throws {
        guest.statuses[step] = BoxstackCore.ExitStatus.terminated(code: 1)
        let launcher = try launcher()
        let error = await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try configuration(["--description", "description", "--target-dir", "target"]), launcher: launcher)
        }
        #expect(error?.code == .guestFailed)
        #expect(launcher.machine.shutdowns == 1)
        #expect(guest.commands.last.map { $0.joined(separator: " ").hasPrefix(step) } == true)
    }

    /// The steps only some runs have: installing KIWI with pip, staging the runtime configuration,
    /// importing the stack, clearing the base's metadata in a derived build, keeping the root.
    enum OptionalStep: String, CaseIterable {
        case pip, runtimeConfiguration, stackImport, baseMetadata, keepRoot
    }

    @Test(arguments: OptionalStep.allCases)
    func aFailingOptionalStepStopsTheRunAndTearsTheBoxDown(step: OptionalStep) async throws {
        let store = StashStore(directory: directory.file("store"))
        try stashTinyDebian(store)
        var configuration = try configuration(["--description", "description", "--target-dir", "target"])
        switch step {
        case .pip:
            configuration.kiwiVersion = "9.24.57"
            guest.statuses["python3 -m pip"] = BoxstackCore.ExitStatus.terminated(code: 1)
        case .runtimeConfiguration:
            configuration.kiwiRuntimeConfiguration = "xz:\n  - options: -0\n"
            guest.failingTransfers = ["write"]
        case .stackImport:
            configuration = try self.configuration(["--stash", "tiny-debian:1", "--target-dir", "target"])
            guest.failingTransfers = ["import"]
        case .baseMetadata:
            configuration = try derivedConfiguration()
            guest.statuses["rm -rf /var/tmp/boxstack/target/build/image-root/image"] = BoxstackCore.ExitStatus.terminated(code: 1)
        case .keepRoot:
            // The recording guest's tree manifest is empty, which the stash refuses.
            configuration.keepRoot = "kept:1"
        }
        let launcher = try launcher(exchange: true)
        await #expect(throws: BoxstackError.self) { try await BoxedBuild.run(configuration, store: store, launcher: launcher) }
        #expect(launcher.machine.shutdowns == 1)
        // KIWI never ran after a failed preparation; only keeping the root comes after it.
        #expect(guest.commands.contains { $0.starts(with: ["kiwi-ng", "system"]) } == (step == .keepRoot))
    }

    @Test func aBoxThatDoesNotStartLeavesNothingToTearDown() async throws {
        let launcher = try launcher()
        launcher.failure = BoxstackError(.timeout, "the box did not reach its agent")
        await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try configuration(["--description", "description", "--target-dir", "target"]), launcher: launcher)
        }
        #expect(guest.commands.isEmpty)
        #expect(launcher.machine.shutdowns == 0)
    }

    @Test func aMissingStashFailsBeforeAnyBoot() async throws {
        let launcher = try launcher(exchange: true)
        let store = StashStore(directory: directory.file("store"))
        await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try configuration(["--stash", "nothing:1", "--target-dir", "target"]), store: store, launcher: launcher)
        }
        #expect(launcher.started.isEmpty)
    }

    @Test(arguments: [false, true])
    func aStackbuildImportsTheStackAndRunsKiwiOnIt(withDescription: Bool) async throws {
        let store = StashStore(directory: directory.file("store"))
        let tree = directory.file("tree")
        try TreeFixture.shell("mkdir -p etc && echo base > etc/os-release", in: tree)
        try store.stash(root: tree, name: "base", tag: "1")
        let launcher = try launcher(exchange: true)
        var arguments = ["--stash", "base:1", "--target-dir", "target"]
        if withDescription {
            // A description on top of a stash installs into the existing root: no bootstrap section.
            try TreeFixture.shell("cp -a \(repositoryRoot)/Tests/Fixtures/tiny-debian-vim/. .", in: directory.file("derived"))
            arguments += ["--description", "derived"]
        }
        let code = try await BoxedBuild.run(try configuration(arguments), store: store, launcher: launcher)
        #expect(code == 0)
        #expect(guest.imports.map(\.root) == ["/var/tmp/boxstack/target/build/image-root"])
        #expect(try #require(launcher.started.first).exchange)
        let kiwi = try #require(guest.commands.first { $0.first == "kiwi-ng" && $0.count > 1 && $0[1] == "system" })
        if withDescription {
            #expect(kiwi.starts(with: ["kiwi-ng", "system", "build", "--description", "/var/tmp/boxstack/description", "--allow-existing-root"]))
        } else {
            #expect(
                kiwi == [
                    "kiwi-ng", "system", "create", "--root", "/var/tmp/boxstack/target/build/image-root", "--target-dir", "/var/tmp/boxstack/target",
                ])
        }
        // The stack crossed as one tar on the exchange share and did not stay there.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("exchange")).isEmpty)
    }

    /// The tiny-debian stash as a KIWI build leaves it: its description stored in image/config.xml.
    private func stashTinyDebian(_ store: StashStore, storingDescription: Bool = true) throws {
        let tree = directory.file("tiny-root")
        try TreeFixture.shell("mkdir -p etc image && echo base > etc/os-release && echo 'echo base' > image/config.sh", in: tree)
        if storingDescription {
            try TreeFixture.shell("cp \(repositoryRoot)/Tests/Fixtures/tiny-debian/config.kiwi image/config.xml", in: tree)
        }
        try store.stash(root: tree, name: "tiny-debian", tag: "1")
    }

    private func derivedConfiguration() throws -> BoxedBuildConfiguration {
        try TreeFixture.shell("cp -a \(repositoryRoot)/Tests/Fixtures/tiny-debian-derived/. .", in: directory.file("derived"))
        return try configuration(["--description", "derived", "--target-dir", "target"])
    }

    @Test func aDerivedBuildMergesBeforeTheBootAndBuildsOnTheBasesRoot() async throws {
        let store = StashStore(directory: directory.file("store"))
        try stashTinyDebian(store)
        let launcher = try launcher(exchange: true)
        let code = try await BoxedBuild.run(try derivedConfiguration(), store: store, launcher: launcher)
        #expect(code == 0)
        let merged = try KiwiDescription(file: target + "/merged-description.xml")
        #expect(merged.name == "tiny-debian")
        #expect(merged.version == "1.1.0")
        #expect(merged.bootstrapPackages.isEmpty)
        #expect(
            commandWords == [
                "rm -rf /var/tmp/boxstack", "mkdir -p /var/tmp/boxstack/target/build", "cp -a /run/boxstack/description/.",
                "rm -f /var/tmp/boxstack/description/config.xml", "write /var/tmp/boxstack/description/config.xml",
                "mkdir -p /var/tmp/boxstack/target/build/image-root", "rm -rf /var/tmp/boxstack/target/build/image-root/image",
                "kiwi-ng system build", "kiwi-ng result bundle",
            ])
        let kiwi = try #require(guest.commands.first { $0.starts(with: ["kiwi-ng", "system"]) })
        #expect(
            kiwi == [
                "kiwi-ng", "system", "build", "--description", "/var/tmp/boxstack/description", "--allow-existing-root",
                "--target-dir", "/var/tmp/boxstack/target",
            ])
        #expect(guest.imports.map(\.root) == ["/var/tmp/boxstack/target/build/image-root"])
        // The derived description's directory (its config.sh and root/) is shared with the box.
        #expect(try #require(launcher.started.first).shares.first?.hostPath == directory.file("derived"))
    }

    @Test func aDerivedBuildIsNoSuccessWithOnlyTheMergedDescription() async throws {
        let store = StashStore(directory: directory.file("store"))
        try stashTinyDebian(store)
        guest.bundleInto = nil
        let error = await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try derivedConfiguration(), store: store, launcher: try launcher(exchange: true))
        }
        #expect(error?.message.contains("no result reached") == true)
    }

    @Test func aBaseStashWithoutAStoredDescriptionFailsBeforeAnyBoot() async throws {
        let store = StashStore(directory: directory.file("store"))
        try stashTinyDebian(store, storingDescription: false)
        let launcher = try launcher(exchange: true)
        let error = await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try derivedConfiguration(), store: store, launcher: launcher)
        }
        #expect(
            error?.message.contains(directory.file("derived/config.xml") + ":5: <base stash=\"tiny-debian:1\">") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("holds no stored description (image/config.xml)") == true)
        #expect(launcher.started.isEmpty)
    }

    @Test func aMissingBaseStashIsNamedByItsElementBeforeAnyBoot() async throws {
        let launcher = try launcher(exchange: true)
        let error = await #expect(throws: BoxstackError.self) {
            try await BoxedBuild.run(try derivedConfiguration(), store: StashStore(directory: directory.file("store")), launcher: launcher)
        }
        #expect(
            error?.message.contains("config.xml:5: <base stash=\"tiny-debian:1\">: there is no stash tiny-debian:1") == true,
            "\(error?.message ?? "")")
        #expect(launcher.started.isEmpty)
    }

    @Test func kiwiVersionTypeAndProfilesShapeTheCommands() async throws {
        var configuration = try configuration(["--description", "description", "--target-dir", "target"])
        configuration.kiwiVersion = "9.24.57"
        configuration.kiwiType = "oem"
        configuration.profiles = ["a", "b"]
        _ = try await BoxedBuild.run(configuration, launcher: try launcher())
        let pip = try #require(guest.commands.first { $0.starts(with: ["python3", "-m", "pip"]) })
        #expect(pip.last == "kiwi==9.24.57")
        #expect(guest.commands.firstIndex(of: pip) ?? 99 < guest.commands.firstIndex { $0 == ["rm", "-rf", "/var/tmp/boxstack"] } ?? 0)
        let kiwi = try #require(guest.commands.first { $0.starts(with: ["kiwi-ng", "--type"]) })
        #expect(kiwi.starts(with: ["kiwi-ng", "--type", "oem", "--profile", "a", "--profile", "b", "system", "build"]))
    }

    @Test func keepRootReadsTheDescriptionKiwiLeftInTheBox() async throws {
        let config = try String(contentsOfFile: description + "/config.kiwi", encoding: .utf8)
        guest.output["sh -c test ! -e"] = config
        let stored = try #require(try await BoxedStash.storedDescription(guestRoot: "/var/tmp/boxstack/target/build/image-root", guest: guest))
        #expect(StashLabels(stored).descriptionName == "tiny-debian")
        #expect(guest.commands.last?.last == "/var/tmp/boxstack/target/build/image-root/image/config.xml")
        guest.output["sh -c test ! -e"] = ""
        #expect(try await BoxedStash.storedDescription(guestRoot: "/elsewhere", guest: guest) == nil)
    }
}
