import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Clean-ups that must run however the controller ends: success, failure, Ctrl-C or SIGTERM.
///
/// Normal paths call their clean-ups directly; on SIGINT or SIGTERM the signal handler runs every one
/// still registered and exits with 128+signal, so a Ctrl-C in the middle of a build destroys the
/// domain and removes the run directory, and one in the middle of a stash or pull removes its
/// temporary layout, before the process goes. (A SIGKILLed controller cannot clean
/// up: a cold-booted domain dies with its libvirt connection; a domain restored from a warm image,
/// which libvirt cannot tie to the connection, and the run directory stay until the next run or
/// `boxstack gc` removes them.)
public final class TeardownRegistry: @unchecked Sendable {
    public static let shared = TeardownRegistry()

    private let lock = NSLock()
    private var actions: [UUID: @Sendable () -> Void] = [:]
    private var sources: [any DispatchSourceSignal] = []

    /// Registers `action`; the returned token unregisters it.
    public func register(_ action: @escaping @Sendable () -> Void) -> UUID {
        let token = UUID()
        lock.withLock {
            actions[token] = action
            installSignalHandlersIfNeeded()
        }
        return token
    }

    public func unregister(_ token: UUID) {
        _ = lock.withLock { actions.removeValue(forKey: token) }
    }

    /// Takes over SIGINT and SIGTERM now. The program calls it first thing: a dispatch signal source is
    /// armed asynchronously, and a signal that came between ignoring it and the source being armed
    /// would be lost, so handlers installed only when the first clean-up registers could miss a Ctrl-C.
    public func installSignalHandlers() {
        lock.withLock { installSignalHandlersIfNeeded() }
    }

    private func installSignalHandlersIfNeeded() {
        guard sources.isEmpty else { return }
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in self?.runAllAndExit(signal: signalNumber) }
            source.resume()
            sources.append(source)
        }
        // The interrupted work usually fails at once (its domain is gone) and the program then exits
        // through its error path; that exit waits here until the teardown has finished and ends the
        // process itself, so the exit status says "interrupted" and nothing is left half removed.
        atexit { TeardownRegistry.shared.waitIfTearingDown() }
    }

    private let tearingDown = LockedBox(false)

    private func runAllAndExit(signal signalNumber: Int32) {
        tearingDown.value = true
        let pending = lock.withLock {
            let pending = Array(actions.values)
            actions.removeAll()
            return pending
        }
        let name = signalNumber == SIGINT ? "interrupted" : "terminated"
        FileHandle.standardError.write(Data("\nboxstack: \(name); cleaning up.\n".utf8))
        for action in pending { action() }
        _exit(128 + signalNumber)
    }

    private func waitIfTearingDown() {
        guard tearingDown.value else { return }
        while true { sleep(60) }
    }
}
