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
        let temporary = OCILayout.exists(at: finalPath) ? nil : try StoreTemporary(store: directory)
        var success = false
        defer { if !success { temporary?.discard() } }
        let layout = try temporary.map { try OCILayout.create(at: $0.path) } ?? OCILayout(opening: finalPath)
        let credentials = try RegistryCredentials.lookup(
            registry: image.registry, repository: image.repository, environment: environment)
        let manifest = try await RegistryClient.withClient(
            registry: image.registry, tlsVerify: tlsVerify, credentials: credentials, timeouts: timeouts
        ) { client in
            try await ImageTransfer(client: client).pull(reference: image, into: layout, tag: target.tag)
        }
        if let temporary {
            guard rename(temporary.path, finalPath) == 0 else {
                throw BoxstackError(.permission, "cannot move the pulled stash into \(finalPath): \(String(cString: strerror(errno))).")
            }
            temporary.kept()
        } else {
            try layout.garbageCollect()
        }
        success = true
        return manifest
    }
}
