import BoxstackCore
import Guest
import Machine

/// A booted box as a boxed run uses it: its agent, its exchange share and its teardown. `BoxSession`
/// (libvirt, SSH) is the one that ships; Tests/BoxedTests drives `BoxedBuild` with recording fakes.
public protocol BoxedMachine: AnyObject, Sendable {
    /// The guest agent; throws when the box has none (it never answered).
    var guest: any GuestCommands { get throws }
    var hello: GuestAgentHello? { get }
    /// The host side of the exchange share, when the run asked for one.
    var exchangeDirectory: String? { get }
    var architecture: MachineArchitecture { get }
    /// The lines a user types to get into a box kept with `--box-debug`.
    var debugInstructions: String { get }
    /// Tears the box down (idempotent); a kept box keeps running.
    func shutdown()
}

/// Boots boxes.
public protocol BoxLauncher: Sendable {
    func start(_ options: BoxSessionOptions) async throws -> any BoxedMachine
}

/// Boots boxes through libvirt and reaches their agent over SSH.
public struct LibvirtBoxLauncher: BoxLauncher {
    public init() {}

    public func start(_ options: BoxSessionOptions) async throws -> any BoxedMachine {
        try await BoxSession.start(options)
    }
}

extension BoxSession: BoxedMachine {
    public var guest: any GuestCommands {
        get throws {
            guard let agent else { throw BoxstackError(.internalError, "the box session has no agent.") }
            return agent
        }
    }

    public var architecture: MachineArchitecture { options.image.architecture }
}
