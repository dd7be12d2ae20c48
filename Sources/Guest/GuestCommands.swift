import BoxstackCore
import Foundation

/// What a boxed run asks of a box's guest agent. `GuestAgent` is the one that ships; tests of the
/// orchestration (Tests/BoxedTests) use recording fakes.
public protocol GuestCommands: Sendable {
    /// Runs `argv` in the box, streaming its output, and returns its exit status.
    func run(
        _ argv: [String], cwd: String?, environment: [String: String],
        onStdout: @escaping @Sendable (Data) -> Void, onStderr: @escaping @Sendable (Data) -> Void
    ) async throws -> ExitStatus
    /// Writes a small file in the box.
    func writeFile(_ data: Data, to path: String) throws
    /// The NUL-separated manifest records of every entry under `root`.
    func treeManifest(root: String) throws -> Data
    /// Writes a tar of the paths listed in `listFile` under `root` to `outputFile`.
    func treeExport(root: String, listFile: String, outputFile: String) throws
    /// Extracts the tar `tarFile` into `root`.
    func treeImport(root: String, tarFile: String) throws
}

extension GuestAgent: GuestCommands {}
