import BoxstackCore
import Foundation
import Machine

#if canImport(Glibc)
    import Glibc
#endif

/// virtiofs through a virtiofsd that the controller runs itself.
///
/// libvirt 9.0 refuses virtiofs in session mode, so the controller starts one virtiofsd per share and the
/// domain reaches it through qemu:commandline (`vhost-user-fs-pci`). For a non-root user, virtiofsd runs in a
/// user namespace whose root is the user and whose uids 1…65536 are the user's subuids (set by `unshare`
/// through newuidmap), so guest root can create files owned by any guest uid. The controller binds the
/// listening socket itself and hands it over as `--fd=0`: virtiofsd then needs no `/run/virtiofsd`.
public final class VirtiofsShareBackend: ShareBackend, @unchecked Sendable {
    public let shares: [SharedPath]
    public let socketsDirectory: String
    private let processes = LockedBox<[ChildProcess]>([])

    public init(shares: [SharedPath], socketsDirectory: String) {
        self.shares = shares
        self.socketsDirectory = socketsDirectory
    }

    public var kind: ShareKind { .virtiofs }

    func socketPath(_ index: Int) -> String { "\(socketsDirectory)/vfs\(index).sock" }

    public func configure(_ spec: inout DomainSpec) {
        for index in shares.indices {
            spec.vhostUserFilesystems.append(VhostUserFilesystem(socketPath: socketPath(index), tag: Self.tag(index)))
        }
    }

    public func guestMountSteps() -> [GuestMountStep] {
        shares.enumerated().map { index, share in .agent(arguments: ["mount", "virtiofs", Self.tag(index), share.guestPath]) }
    }

    /// Paths where distributions install virtiofsd (QEMU 7.2's C version lives in /usr/lib/qemu).
    public static let virtiofsdCandidates = ["/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd", "/usr/bin/virtiofsd"]

    /// The virtiofsd to run, or a clear error suggesting 9p.
    public static func findVirtiofsd() throws -> String {
        if let found = virtiofsdCandidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        throw BoxstackError(
            .unsupported,
            "virtiofs sharing needs virtiofsd, which is not installed (looked in \(virtiofsdCandidates.joined(separator: ", "))); install it or use --9p-sharing."
        )
    }

    /// The `unshare` prefix that runs virtiofsd as the user in a user namespace with the user's subuids;
    /// empty for root, who needs no namespace.
    public static func userNamespacePrefix(
        userID: uid_t = geteuid(), subuidFile: String = "/etc/subuid", subgidFile: String = "/etc/subgid"
    ) throws -> [String] {
        guard userID != 0 else { return [] }
        let name = getpwuid(userID).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? String(userID)
        let advice = "add them with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \(name)`, or use --9p-sharing"
        guard let uids = subordinateRange(file: subuidFile, user: name, id: userID),
            let gids = subordinateRange(file: subgidFile, user: name, id: userID)
        else {
            throw BoxstackError(
                .unsupported, "virtiofs sharing needs subordinate ids for \(name) in \(subuidFile) and \(subgidFile); \(advice).")
        }
        guard Subprocess.which("newuidmap") != nil, Subprocess.which("unshare") != nil else {
            throw BoxstackError(
                .unsupported, "virtiofs sharing needs newuidmap and unshare (packages uidmap and util-linux); install them or use --9p-sharing.")
        }
        return [
            "unshare", "--map-root-user",
            "--map-users=\(uids.start),1,\(min(uids.count, 65536))",
            "--map-groups=\(gids.start),1,\(min(gids.count, 65536))",
        ]
    }

    /// The first `user:start:count` (or `uid:start:count`) line for the user in a subuid/subgid file.
    static func subordinateRange(file: String, user: String, id: uid_t) -> (start: Int, count: Int)? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":")
            guard fields.count == 3, fields[0] == user || fields[0] == String(id),
                let start = Int(fields[1]), let count = Int(fields[2]), count > 0
            else { continue }
            return (start, count)
        }
        return nil
    }

    public func startHostSide() throws {
        let virtiofsd = try Self.findVirtiofsd()
        let prefix = try Self.userNamespacePrefix()
        try FileManager.default.makeDirectory(socketsDirectory, mode: 0o700)
        do {
            for (index, share) in shares.enumerated() {
                try startDaemon(virtiofsd: virtiofsd, prefix: prefix, index: index, share: share)
            }
        } catch {
            stop()
            throw error
        }
    }

    private func startDaemon(virtiofsd: String, prefix: [String], index: Int, share: SharedPath) throws {
        guard FileManager.default.fileExists(atPath: share.hostPath) else {
            throw BoxstackError(.notFound, "the shared path \(share.hostPath) does not exist.")
        }
        let listener = try UnixSocket.listen(at: socketPath(index))
        defer { listener.close() }
        let logPath = "\(socketsDirectory)/virtiofsd\(index).log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600]),
            let log = FileHandle(forWritingAtPath: logPath)
        else {
            throw BoxstackError(.permission, "cannot write \(logPath).")
        }
        defer { try? log.close() }

        let arguments =
            prefix + [
                virtiofsd, "--fd=0", "-o", "source=\(share.hostPath)", "-o", "cache=auto", "-o", "sandbox=namespace", "-o", "xattr",
            ]
        let process = try ChildProcess(
            arguments, standardInput: listener.descriptor, standardOutput: log.fileDescriptor, standardError: log.fileDescriptor)
        processes.withValue { $0.append(process) }

        // A namespace or option problem makes virtiofsd exit at once; catch it here, not as a hung mount.
        Thread.sleep(forTimeInterval: 0.3)
        if let status = process.status {
            let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let tail = output.split(separator: "\n").suffix(5).joined(separator: "\n")
            throw BoxstackError(
                .processFailed, "virtiofsd for \(share.hostPath) exited at once (\(status)); use --9p-sharing instead.",
                details: tail)
        }
    }

    public func stop() {
        let running = processes.withValue { list in
            defer { list.removeAll() }
            return list
        }
        // Only children not reaped yet: a reaped pid may already belong to another process.
        for process in running where process.status == nil { kill(process.pid, SIGTERM) }
        for process in running { process.finish(grace: .seconds(2)) }
    }
}
