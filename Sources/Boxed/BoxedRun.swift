import BoxstackCore
import Foundation
import Guest
import Kiwi
import Stash

/// The steps of one boxed run in a booted box, each a few commands through the agent.
struct BoxedRun {
    let configuration: BoxedBuildConfiguration
    let machine: any BoxedMachine
    let guest: any GuestCommands
    let log: BuildLog
    let store: StashStore

    private var request: KiwiBuildRequest { configuration.request }

    func run(_ argv: [String]) async throws -> ExitStatus {
        try await guest.run(argv, cwd: nil, environment: [:], onStdout: { log.standardOutput($0) }, onStderr: { log.standardError($0) })
    }

    func check(_ argv: [String], _ what: String) async throws {
        let status = try await run(argv)
        guard status.isSuccess else { throw BoxstackError(.guestFailed, "\(what) failed in the box (\(status)).") }
    }

    /// `--kiwi-version`: KIWI from PyPI; pip in the box trusts what the host trusts (behind a
    /// TLS-intercepting proxy only the host's bundle holds the proxy's CA).
    func installKiwi(_ version: String) async throws {
        log.note("installing KIWI \(version) with pip")
        var pip = ["python3", "-m", "pip", "install", "--break-system-packages"]
        if let bundle = BoxedBuild.hostCertificateBundle {
            try guest.writeFile(try Data(contentsOf: URL(fileURLWithPath: bundle)), to: GuestPaths.hostCertificates)
            pip += ["--cert", GuestPaths.hostCertificates]
        }
        try await check(pip + ["kiwi==\(version)"], "Installing KIWI \(version) with pip")
        try await check(["kiwi-ng", "--version"], "Running the KIWI installed with pip")
    }

    /// A clean work directory on the box's own disk, with the description copied in from its share. In a
    /// derived build the copy's description file is `merged`, so KIWI reads the merged description and
    /// takes the derived one's scripts and overlay from beside it.
    func stageDescription(merged: Data?) async throws {
        try await check(["rm", "-rf", GuestPaths.work], "Cleaning the box's work directory")
        try await check(["mkdir", "-p", GuestPaths.localTarget + "/build"], "Creating the box's work directory")
        if request.descriptionDirectory != nil {
            try await check(["cp", "-a", GuestPaths.description + "/.", GuestPaths.localDescription], "Copying the description")
        }
        if let merged, let derived = request.derived {
            let derivedFile = GuestPaths.localDescription + "/" + (derived.path as NSString).lastPathComponent
            try await check(["rm", "-f", derivedFile], "Removing the derived description from the box's copy")
            try guest.writeFile(merged, to: GuestPaths.localDescription + "/config.xml")
        }
    }

    func stageRuntimeConfiguration(_ yaml: String) throws {
        try guest.writeFile(Data(yaml.utf8), to: GuestPaths.kiwiRuntimeConfiguration)
    }

    /// The stacked stashes, flattened on the host into one tar on the exchange share, extracted as the image root.
    func importStack(_ stack: [StashReference]) async throws {
        guard let exchangeDirectory = machine.exchangeDirectory else {
            throw BoxstackError(.internalError, "a stackbuild needs the exchange share.")
        }
        log.note("stacking \(request.stashes.joined(separator: ", ")) into the box")
        try store.exportStack(stack, toTar: exchangeDirectory + "/stack.tar")
        defer { try? FileManager.default.removeItem(atPath: exchangeDirectory + "/stack.tar") }
        try await check(["mkdir", "-p", GuestPaths.imageRoot], "Creating the image root")
        try guest.treeImport(root: GuestPaths.imageRoot, tarFile: BoxSession.guestExchangeDirectory + "/stack.tar")
    }

    /// A derived build: the base's `image/` directory (its stored description and the scripts that ran
    /// when it was built) leaves the imported root, so KIWI runs only the derived description's scripts
    /// and stores the merged description there.
    func clearBaseMetadata() async throws {
        try await check(["rm", "-rf", GuestPaths.imageRoot + "/image"], "Removing the base's image/ directory from the image root")
    }

    /// KIWI's command line in the box: a build, a rebuild from the stacked root, or a build on it.
    var kiwiCommand: [String] {
        var kiwi = ["kiwi-ng"]
        if configuration.kiwiRuntimeConfiguration != nil { kiwi += ["--config", GuestPaths.kiwiRuntimeConfiguration] }
        if let type = configuration.kiwiType { kiwi += ["--type", type] }
        for profile in configuration.profiles { kiwi += ["--profile", profile] }
        kiwi += request.kiwiCommand
        if request.isStackbuild && request.descriptionDirectory == nil {
            kiwi += ["--root", GuestPaths.imageRoot]
        } else {
            kiwi += ["--description", GuestPaths.localDescription]
            if request.isStackbuild { kiwi.append("--allow-existing-root") }
        }
        return kiwi + ["--target-dir", GuestPaths.localTarget] + request.options
    }

    func runKiwi() async throws -> ExitStatus {
        log.note("running " + kiwiCommand.joined(separator: " "))
        return try await run(kiwiCommand)
    }

    /// The run's results into the target share, as `configuration.delivery` asks. Never a success
    /// without a result: a result must have landed on the host during this run (files left by an
    /// earlier run do not count).
    func deliverResults(since started: Date) async throws {
        switch configuration.delivery {
        case .bundle:
            try await check(
                ["kiwi-ng", "result", "bundle", "--target-dir", GuestPaths.localTarget, "--id", "0", "--bundle-dir", GuestPaths.target],
                "Bundling KIWI's results")
        case .targetFiles:
            // Copied sparsely, as a file system image is mostly holes.
            try await check(
                [
                    "find", GuestPaths.localTarget, "-maxdepth", "1", "-type", "f", "!", "-name", "*.tar.xz",
                    "-exec", "cp", "--sparse=always", "-t", GuestPaths.target, "{}", "+",
                ], "Copying KIWI's results")
        }
        try ResultFiles.normalizeModes(in: request.targetDirectory, sharing: configuration.session.sharing)
        guard ResultFiles.hasNewResults(in: request.targetDirectory, since: started) else {
            throw BoxstackError(
                .guestFailed,
                "KIWI reported success but no result reached \(request.targetDirectory); see boxstack.log there.")
        }
    }

    /// `--keep-root`: the image root as a stash.
    func keepRoot(_ reference: String) async throws {
        log.note("stashing the root tree as \(reference)")
        let result = try await BoxedStash.keepRoot(reference, machine: machine, guest: guest, guestRoot: GuestPaths.imageRoot, store: store)
        log.note(result.summary)
    }
}
