import BoxstackCore
import Foundation
import OCI
import Registry

#if canImport(Glibc)
import Glibc
#endif

extension StashStore {
    /// Pulls `image` from its registry into the stash `target`, downloading only the blobs the store
    /// lacks and verifying every one. Runs under the name's lock; a first pull goes to a temporary
    /// layout that is renamed into place, so a failed pull leaves the store as it was. Credentials come
    /// from the auth files of `environment`.
    @discardableResult
    public func pull(
        _ image: ImageReference, as target: StashReference, tlsVerify: Bool = true,
        timeouts: RegistryTimeouts = RegistryTimeouts(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> Descriptor {
        let lock = try self.lock(name: target.name)
        defer { withExtendedLifetime(lock) {} }
        let finalPath = layoutPath(name: target.name)
        let isFirst = !OCILayout.exists(at: finalPath)
        let workingPath = isFirst ? directory + "/.tmp-" + UUID().uuidString : finalPath
        if isFirst { try FileManager.default.makeDirectory(directory) }
        defer { if isFirst { try? FileManager.default.removeItem(atPath: workingPath) } }
        let layout = isFirst ? try OCILayout.create(at: workingPath) : try OCILayout(opening: finalPath)
        let credentials = try RegistryCredentials.lookup(
            registry: image.registry, repository: image.repository, environment: environment)
        let manifest = try await RegistryClient.withClient(
            registry: image.registry, tlsVerify: tlsVerify, credentials: credentials, timeouts: timeouts
        ) { client in
            try await ImageTransfer(client: client).pull(reference: image, into: layout, tag: target.tag)
        }
        if isFirst {
            try FileManager.default.makeDirectory((finalPath as NSString).deletingLastPathComponent)
            guard rename(workingPath, finalPath) == 0 else {
                throw BoxstackError(.permission, "cannot move the pulled stash into \(finalPath): \(String(cString: strerror(errno))).")
            }
        } else {
            try layout.garbageCollect()
        }
        return manifest
    }
}
