import ArgumentParser
import Boxed
import Boxes
import BoxstackCore
import Foundation
import Machine
import Registry
import Sharing

extension BoxOptions {
    /// The box options this invocation gave (those that differ from their defaults), as typed.
    var givenOptions: [String] {
        var given: [String] = []
        func note(_ name: String, _ isGiven: Bool) { if isGiven { given.append(name) } }
        note("--box", box != "debian")
        note("--box-memory", boxMemory != nil)
        note("--box-smp-cpus", boxSMPCPUs != nil)
        note("--box-console", boxConsole != nil)
        note("--box-debug", boxDebug)
        note("--kiwi-version", kiwiVersion != nil)
        note("--shared-path", !sharedPaths.isEmpty)
        note("--no-update-check", noUpdateCheck)
        note("--no-snapshot", noSnapshot)
        note("--no-accel", noAccel)
        note("--cold", cold)
        note("--virtiofs-sharing", sharing == .virtiofsSharing)
        note("--sshfs-sharing", sharing == .sshfsSharing)
        note("--arch", requestedArch != nil)
        note("--machine", machine != nil)
        note("--cpu", cpu != nil)
        note("--type", type != nil)
        note("--profile", !profile.isEmpty)
        note("--connect", connect != nil)
        note("--timeout", timeout != BoxOptions.defaultTimeout)
        note("--offline", offline)
        return given
    }

    /// The options that shape a booted box, for `boxes run` as for builds.
    static let sessionOptionNames: Set = [
        "--box-memory", "--box-smp-cpus", "--box-console", "--box-debug", "--shared-path", "--no-update-check",
        "--no-snapshot", "--no-accel", "--cold", "--virtiofs-sharing", "--sshfs-sharing", "--arch", "--machine", "--cpu",
        "--connect", "--timeout", "--offline",
    ]

    /// The session options of a boxed run of `image` as these options ask for it.
    func sessionOptions(image: BoxImage) throws -> BoxSessionOptions {
        var session = BoxSessionOptions(image: image)
        session.memoryBytes = boxMemory.flatMap(ByteCount.parse)
        session.cpus = boxSMPCPUs
        session.console = boxConsole
        session.machine = machine
        session.cpuModel = cpu
        session.noAccel = noAccel
        session.snapshot = !noSnapshot
        session.offline = offline
        session.timeout = .seconds(timeout)
        session.connectURI = connect
        session.sharing = sharing.shareKind
        session.shares = try sharedPaths.map(SharedPath.existing)
        session.keepRunning = boxDebug
        session.warm = !cold
        session.report = { FileHandle.standardError.write(Data("boxstack: \($0)\n".utf8)) }
        return session
    }

    /// The box `name` (the `--box` one when nil) of `catalog` (loaded when nil) in the requested
    /// architecture, fetched or updated into `cache` as needed; the cache's notice (a source that cannot
    /// be reached and the cached box used instead, say) goes to standard error.
    func cachedImage(named name: String? = nil, catalog: BoxCatalog? = nil, cache: BoxCache? = nil) async throws -> BoxImage {
        let definition = try (catalog ?? BoxCatalog.load()).box(named: name ?? box)
        let cache = try cache ?? BoxCache(registryTimeouts: try RegistryTimeouts.fromEnvironment())
        let cached = try await cache.ensure(
            definition, arch: requestedArch ?? hostArchitecture, checkForUpdates: !noUpdateCheck, progress: ProgressBar.isTerminal)
        if let notice = cached.notice { FileHandle.standardError.write(Data("boxstack: \(notice)\n".utf8)) }
        return try BoxImage(cached)
    }
}

extension Boxstack {
    /// Refuses the root command's options that `verb` does not use, so none is ignored without a word.
    func refuseOptions(for verb: String, except applicable: Set<String>) throws {
        let given = box.givenOptions + (keepRoot != nil ? ["--keep-root"] : [])
        let ignored = given.filter { !applicable.contains($0) }
        guard ignored.isEmpty else {
            let list = ignored.joined(separator: ", ")
            throw ValidationError(
                "\(list) \(ignored.count == 1 ? "does" : "do") not apply to 'boxstack \(verb)'; leave \(ignored.count == 1 ? "it" : "them") out.")
        }
    }
}
