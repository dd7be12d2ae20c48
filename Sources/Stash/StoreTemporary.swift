import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A temporary directory in the stash store (a first stash or pull being built, a stash being
/// removed), alive while its lock is held.
///
/// It is removed by `discard()`, on SIGINT or SIGTERM, or, when its process was killed, by the next
/// `StashStore.sweepTemporaries()`, which removes every temporary whose lock nobody holds.
final class StoreTemporary: @unchecked Sendable {
    static let prefix = ".tmp-"
    let path: String
    private let lock: FileLock
    private var teardown: UUID?

    init(store: String) throws {
        let name = Self.prefix + UUID().uuidString
        path = store + "/" + name
        lock = try FileLock(path: StoreTemporary.lockPath(store: store, name: name))
        let path = self.path
        let lockPath = lock.path
        teardown = TeardownRegistry.shared.register {
            StoreTemporary.remove(path)
            unlink(lockPath)
        }
    }

    static func lockPath(store: String, name: String) -> String { store + "/.locks/" + name + ".lock" }

    /// The temporary became a stash (it was renamed away): only its lock goes.
    func kept() {
        unregister()
        unlink(lock.path)
    }

    /// Removes the temporary and its lock.
    func discard() {
        unregister()
        Self.remove(path)
        unlink(lock.path)
    }

    /// Removes `path`, again if a writer still working in it (a signal handler runs beside it) added files meanwhile.
    private static func remove(_ path: String) {
        for _ in 0..<5 where FileManager.default.fileExists(atPath: path) {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    private func unregister() {
        if let teardown { TeardownRegistry.shared.unregister(teardown) }
        teardown = nil
    }

    /// Removes the temporaries in `store` whose process is gone (their lock is free).
    static func sweep(store: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: store)) ?? []
        for name in names where name.hasPrefix(prefix) {
            guard let stale = try? FileLock.attempt(path: lockPath(store: store, name: name)) else { continue }
            try? FileManager.default.removeItem(atPath: store + "/" + name)
            unlink(stale.path)
        }
    }
}
