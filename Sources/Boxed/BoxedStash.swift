import BoxstackCore
import Foundation
import Guest
import Kiwi
import OCI
import Registry
import Stash

/// The stash side of boxed runs: stacking stashes into the box and keeping the box's root tree.
///
/// Bulk data crosses as one tar file on the exchange share; only the tree manifest (metadata) uses the
/// SSH channel, so a second stash of a big tree moves just the changed files.
enum BoxedStash {
    /// The `--stash` references, pulled first from `--from-registry` (as REGISTRY/NAME:TAG) when given.
    static func resolve(
        _ texts: [String], fromRegistry: String?, timeouts: RegistryTimeouts, store: StashStore
    ) async throws -> [StashReference] {
        let references = try texts.map { try StashReference(parsing: $0) }
        for reference in references {
            if let fromRegistry {
                try await store.pull(
                    try ImageReference(parsing: "\(fromRegistry)/\(reference.name):\(reference.tag)"), as: reference,
                    timeouts: timeouts)
            } else {
                let layout = store.layoutPath(name: reference.name)
                guard OCILayout.exists(at: layout), (try? OCILayout(opening: layout).descriptor(tag: reference.tag)) != nil else {
                    throw BoxstackError(
                        .notFound,
                        "there is no stash \(reference); see 'boxstack stash --list', or pull it with --from-registry.")
                }
            }
        }
        return references
    }

    /// Stashes the box's `guestRoot` as `text` (NAME[:TAG]): one new layer with what changed since that
    /// stash's top (none when nothing changed), or the whole tree for a new name.
    static func keepRoot(
        _ text: String, machine: any BoxedMachine, guest agent: any GuestCommands, guestRoot: String, store: StashStore
    ) async throws -> StashResult {
        guard let exchange = machine.exchangeDirectory else {
            throw BoxstackError(.internalError, "keeping the root needs the exchange share.")
        }
        let reference = try StashReference(parsing: text)
        let current = try TreeManifest(agentOutput: try agent.treeManifest(root: guestRoot))
        let previous = try store.previousTreeManifest(name: reference.name, tag: reference.tag)
        let (changed, deleted) = TreeManifest.changes(from: previous, to: current)
        defer {
            try? FileManager.default.removeItem(atPath: exchange + "/export.list")
            try? FileManager.default.removeItem(atPath: exchange + "/export.tar")
        }
        // An unchanged tree adds no layer, so the store never reads an export: the box need not write one.
        if previous == nil || !changed.isEmpty || !deleted.isEmpty {
            var list = Data()
            for path in changed {
                list.append(contentsOf: path.utf8)
                list.append(0)
            }
            try list.writeAtomically(to: exchange + "/export.list")
            try agent.treeExport(
                root: guestRoot, listFile: BoxSession.guestExchangeDirectory + "/export.list",
                outputFile: BoxSession.guestExchangeDirectory + "/export.tar")
        }
        return try store.appendLayer(
            name: reference.name, tag: reference.tag, fromTar: exchange + "/export.tar", deleted: deleted,
            manifest: current, architecture: Platform.goArchitecture(machine.architecture.name),
            labels: try await storedDescription(guestRoot: guestRoot, guest: agent).map(StashLabels.init))
    }

    /// The description KIWI left in the box's image root, read through the agent (a small file).
    static func storedDescription(guestRoot: String, guest: any GuestCommands) async throws -> KiwiDescription? {
        let path = guestRoot + "/image/config.xml"
        let output = LockedBox(Data())
        let status = try await guest.run(
            ["sh", "-c", "test ! -e \"$1\" || cat \"$1\"", "sh", path], cwd: nil, environment: [:],
            onStdout: { chunk in output.withValue { $0.append(chunk) } }, onStderr: { _ in })
        guard status.isSuccess, !output.value.isEmpty else { return nil }
        return try KiwiDescription(data: output.value, path: path)
    }
}

extension StashLabels {
    /// The labels of a stash built from `description`.
    public init(_ description: KiwiDescription) {
        self.init(descriptionName: description.name, descriptionVersion: description.version, author: description.author)
    }
}
