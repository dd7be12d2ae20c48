import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The private directory of one boxed run (mode 0700): overlay, keys, seed share, console log, sockets.
///
/// The live controller holds `owner.lock` for as long as the run lasts. The kernel drops that lock when the
/// controller dies, however it dies, so `collectGarbage` can tell a leftover from a live run without guessing.
public final class RunDirectory: @unchecked Sendable {
    /// Short random id; the domain is `boxstack-<id>`.
    public let id: String
    public let path: String
    private let lock: LockedBox<FileLock?>

    public static let domainPrefix = "boxstack-"
    static let lockName = "owner.lock"
    /// A directory without its lock file this young is still being created by its owner.
    static let creationGraceSeconds: TimeInterval = 60

    /// Creates a fresh run directory under `runsDirectory` and takes its owner lock.
    public static func create(under runsDirectory: String) throws -> RunDirectory {
        try FileManager.default.makeDirectory(runsDirectory, mode: 0o700)
        for _ in 0..<8 {
            let id = randomID()
            let path = "\(runsDirectory)/\(id)"
            guard mkdir(path, 0o700) == 0 else {
                if errno == EEXIST { continue }
                throw BoxstackError(.permission, "cannot create the run directory \(path): \(String(cString: strerror(errno))).")
            }
            guard let lock = try FileLock.attempt(path: "\(path)/\(lockName)") else {
                throw BoxstackError(.busy, "the new run directory \(path) is locked by another process.")
            }
            return RunDirectory(id: id, path: path, lock: lock)
        }
        throw BoxstackError(.internalError, "cannot find an unused run id under \(runsDirectory).")
    }

    private init(id: String, path: String, lock: FileLock) {
        self.id = id
        self.path = path
        self.lock = LockedBox(lock)
    }

    public var domainName: String { Self.domainPrefix + id }
    public var overlayPath: String { path + "/overlay.qcow2" }
    public var consoleLogPath: String { path + "/console.log" }
    /// The read-only seed share (guest host key, authorized_keys).
    public var seedDirectory: String { path + "/seed" }
    /// The controller's own key pair and other secrets that never enter the guest.
    public var keysDirectory: String { path + "/keys" }
    /// Unix sockets (virtiofsd, the resume port).
    public var socketsDirectory: String { path + "/sockets" }
    /// The host end of a warm box's resume port (Docs/warm-boxes.md).
    public var resumeSocketPath: String { socketsDirectory + "/resume.sock" }

    /// Marks the run as kept on purpose (`--box-debug`): garbage collection leaves it alone for as long
    /// as its domain runs, although its controller is gone.
    public func markKept() throws {
        try Data().writeAtomically(to: path + "/" + Self.keptName, mode: 0o600)
    }

    static let keptName = "kept"
    static let warmDomainName = "warm-domain"

    /// Records that this run's domain is a restored warm image named `domainName`, whose slot the run holds
    /// by the lock at `slotLockPath`: garbage collection destroys such a domain only when it can take that
    /// lock itself, since a later run may already have restored the slot under the same name.
    public func recordWarmDomain(named domainName: String, slotLockPath: String) throws {
        try Data("\(domainName)\n\(slotLockPath)\n".utf8).writeAtomically(to: path + "/" + Self.warmDomainName, mode: 0o600)
    }

    /// Drops the record of `recordWarmDomain` (the run boots cold after all).
    public func forgetWarmDomain() {
        try? FileManager.default.removeItem(atPath: path + "/" + Self.warmDomainName)
    }

    /// Creates the sub-directories a run fills (all 0700).
    public func makeSubdirectories() throws {
        for directory in [seedDirectory, keysDirectory, socketsDirectory] {
            try FileManager.default.makeDirectory(directory, mode: 0o700)
        }
    }

    /// Deletes the directory and everything in it, then releases the lock. Safe to call twice.
    public func remove() {
        guard lock.value != nil else { return }
        // 9p in mapped mode can leave guest-created files without owner write permission.
        _ = try? Subprocess.run(["chmod", "-R", "u+rwX", path])
        try? FileManager.default.removeItem(atPath: path)
        lock.value = nil
    }

    /// Removes what runs killed before their teardown left behind: every run directory whose owner lock is
    /// free, after destroying its domain (when a connection is given). Live runs hold their lock and are never
    /// touched. Returns the ids removed.
    @discardableResult
    public static func collectGarbage(in runsDirectory: String, connection: (any Hypervisor)?) throws -> [String] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: runsDirectory) else { return [] }
        var removed: [String] = []
        for id in entries.sorted() where !id.hasPrefix(".") {
            let path = "\(runsDirectory)/\(id)"
            let lockPath = "\(path)/\(lockName)"
            guard FileManager.default.fileExists(atPath: lockPath) else {
                let attributes = try? FileManager.default.attributesOfItem(atPath: path)
                let modified = attributes?[.modificationDate] as? Date ?? .distantPast
                guard Date().timeIntervalSince(modified) > creationGraceSeconds else { continue }
                try? FileManager.default.removeItem(atPath: path)
                removed.append(id)
                continue
            }
            guard let lock = try FileLock.attempt(path: lockPath) else { continue }
            if let warm = try? String(contentsOfFile: "\(path)/\(warmDomainName)", encoding: .utf8) {
                let lines = warm.split(separator: "\n").map(String.init)
                if lines.count == 2, let slotLock = try FileLock.attempt(path: lines[1]) {
                    try connection?.domain(named: lines[0])?.destroy()
                    withExtendedLifetime(slotLock) {}
                }
            } else {
                let domain = connection?.domain(named: domainPrefix + id)
                if FileManager.default.fileExists(atPath: "\(path)/\(keptName)"), domain?.isActive == true { continue }
                if let domain { try domain.destroy() }
            }
            _ = try? Subprocess.run(["chmod", "-R", "u+rwX", path])
            try? FileManager.default.removeItem(atPath: path)
            withExtendedLifetime(lock) {}
            removed.append(id)
        }
        return removed
    }

    /// 12 hex digits from the system's random source.
    static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString
    }
}
