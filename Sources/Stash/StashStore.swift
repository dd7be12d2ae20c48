import BoxstackCore
import CLibArchive
import Foundation
import OCI

#if canImport(Glibc)
    import Glibc
#endif

/// The local stash store: one OCI image layout per stash name under `directory`, tags as ref names.
///
/// `skopeo inspect oci:DIRECTORY/NAME:TAG` and `umoci unpack --image DIRECTORY/NAME:TAG` read it.
/// Every change to a name happens under that name's lock (`DIRECTORY/.locks`), blobs and index.json
/// are written atomically, and a failed first stash leaves no directory behind.
public struct StashStore: Sendable {
    /// The store's directory.
    public let directory: String

    /// The label keys a stash's image configuration carries.
    public enum Label {
        public static let descriptionName = "io.boxstack.description.name"
        public static let descriptionVersion = "io.boxstack.description.version"
        public static let author = AnnotationKey.authors
        public static let created = AnnotationKey.created
    }

    /// The store at `directory` (default: `Paths().stashDirectory`).
    public init(directory: String = Paths().stashDirectory) {
        self.directory = directory
    }

    /// The layout directory of stash `name`: the name with its `/` written as `+` (which names cannot
    /// hold), so every stash is one directory of the store and no name can be inside another's layout.
    public func layoutPath(name: String) -> String { directory + "/" + name.replacingOccurrences(of: "/", with: "+") }

    /// The layout of an existing stash; throws `notFound` naming the stash otherwise.
    public func layout(name: String) throws -> OCILayout {
        guard OCILayout.exists(at: layoutPath(name: name)) else {
            throw BoxstackError(.notFound, "there is no stash named \(name) in \(directory); see boxstack stash --list.")
        }
        return try OCILayout(opening: layoutPath(name: name))
    }

    /// Takes the lock of stash `name` (exclusive for writers, shared for readers). Lock files are named
    /// by the name's digest, so a name of any valid length has one.
    public func lock(name: String, shared: Bool = false) throws -> FileLock {
        let locks = directory + "/.locks"
        try FileManager.default.makeDirectory(locks)
        let lock = try FileLock(path: locks + "/" + ContentDigest.of(Data(name.utf8)).hex + ".lock", shared: shared)
        StoreTemporary.sweep(store: directory)
        return lock
    }

    // MARK: Parent image

    /// The image a new stash to `name:tag` extends: the tag's image, else `latest`, else the most
    /// recently tagged image of the name, else none.
    private func parent(layout: OCILayout?, tag: String) throws -> (descriptor: Descriptor, manifest: Manifest, config: ImageConfig)? {
        guard let layout else { return nil }
        let newest = try layout.index().manifests.last { $0.refName != nil }
        guard let found = try layout.manifest(tag: tag) ?? layout.manifest(tag: "latest") ?? newest.map({ try layout.resolveManifest($0) })
        else { return nil }
        let config = try layout.readJSON(ImageConfig.self, found.manifest.config.digest)
        return (found.descriptor, found.manifest, config)
    }

    private func storedTreeManifest(layout: OCILayout, manifest: Manifest) throws -> TreeManifest? {
        guard let value = manifest.annotations?[TreeManifest.annotation], let digest = ContentDigest(value),
            layout.hasBlob(digest)
        else { return nil }
        return try TreeManifest(serialized: layout.readBlob(digest))
    }

    /// The tree manifest of the image a new stash to `name:tag` would extend, or nil when it would be the
    /// first layer (or when the image was pulled without one, which makes the next layer a full one).
    public func previousTreeManifest(name: String, tag: String = "latest") throws -> TreeManifest? {
        let lock = try lock(name: name, shared: true)
        defer { _ = lock }
        guard OCILayout.exists(at: layoutPath(name: name)) else { return nil }
        let layout = try OCILayout(opening: layoutPath(name: name))
        guard let parent = try parent(layout: layout, tag: tag) else { return nil }
        return try storedTreeManifest(layout: layout, manifest: parent.manifest)
    }

    // MARK: Stash a local tree

    /// Stashes the root tree at `root` as `name:tag`, recording `labels` (else the labels of the image it extends).
    ///
    /// The first stash of a name writes one layer with the whole tree; each later one adds a single layer
    /// with only what changed since the image of `tag` (else `latest`, else the newest tag), deletions as whiteouts. Unchanged
    /// files are not read. Throws `permission` naming the first unreadable path, leaving the store as it was.
    @discardableResult
    public func stash(
        root: String, name: String, tag: String = "latest", compression: LayerCompression = .gzip, labels: StashLabels? = nil
    ) throws -> StashResult {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BoxstackError(.notFound, "the root tree \(root) does not exist or is not a directory.")
        }
        let reference = try StashReference(name: name, tag: tag)
        let scanned = try TreeScanner(root: root).scan()
        let manifest = TreeManifest(
            entries: scanned.map(\.entry), recordsExtendedAttributes: true, recordsHardlinks: true)
        let architecture = TreeArchitecture.detect(root: root)

        return try writeStash(
            reference: reference, manifest: manifest, compression: compression, architecture: architecture,
            labels: labels, createdBy: "boxstack stash --root \(root)"
        ) { writer, changed, whiteouts in
            var byPath: [String: Int] = [:]
            byPath.reserveCapacity(scanned.count)
            for (index, item) in scanned.enumerated() { byPath[item.entry.path] = index }
            guard let disk = archive_read_disk_new() else { throw BoxstackError(.internalError, "libarchive could not allocate a reader.") }
            defer { archive_read_free(disk) }
            archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_SPARSE)
            let rootPrefix = root.hasSuffix("/") ? root : root + "/"
            try Self.merge(changed: changed, whiteouts: whiteouts, writer: writer) { path in
                guard let index = byPath[path], let entry = archive_entry_new2(disk) else { return }
                defer { archive_entry_free(entry) }
                var status = scanned[index].status
                let source = rootPrefix + path
                archive_entry_copy_sourcepath(entry, source)
                archive_entry_copy_pathname(entry, source)
                if archive_read_disk_entry_from_file(disk, entry, -1, &status) < ARCHIVE_WARN {
                    let message = archive_error_string(disk).map { String(cString: $0) } ?? "unknown error"
                    throw BoxstackError(
                        .permission,
                        "cannot read \(source) (\(message)); stash a tree you can read: run as root, or stash from the box with --keep-root.")
                }
                archive_entry_copy_pathname(entry, path)
                archive_entry_unset_atime(entry)
                archive_entry_unset_ctime(entry)
                archive_entry_unset_birthtime(entry)
                archive_entry_set_uname(entry, nil)
                archive_entry_set_gname(entry, nil)
                try writer.write(entry: entry, contentFrom: source)
            }
        }
    }

    // MARK: Stash from a guest export

    /// Adds a layer to `name:tag` from a tar of the changed paths exported by the guest agent
    /// (`tree-export`), plus whiteouts for `deleted`, and records `manifest` as the new tree manifest.
    ///
    /// `deleted` and the tar's paths come from `TreeManifest.changes(from: previousTreeManifest(...), to: manifest)`.
    /// Directories that became non-directories (and back) get their whiteout automatically. `labels`
    /// replace the previous image's when given.
    @discardableResult
    public func appendLayer(
        name: String, tag: String = "latest", fromTar tarPath: String, deleted: [String], manifest: TreeManifest,
        compression: LayerCompression = .gzip, architecture: String? = nil, labels: StashLabels? = nil
    ) throws -> StashResult {
        let reference = try StashReference(name: name, tag: tag)
        return try writeStash(
            reference: reference, manifest: manifest, compression: compression, architecture: architecture,
            labels: labels, createdBy: "boxstack stash (boxed)", deletedOverride: deleted,
            writeLayer: { writer, _, whiteouts in
                let reader = try LayerReader(path: tarPath, description: "the exported tree \(tarPath)", expected: nil)
                var pending = whiteouts[...]
                while let entry = try reader.next() {
                    let rawName = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
                    let path: String
                    do throws(LayerPath.UnsafeName) { path = try LayerPath.normalized(rawName) } catch {
                        throw BoxstackError(
                            .invalidData, "the exported tree \(tarPath) has the entry \(Terminal.quoted(rawName)): \(error.reason).")
                    }
                    if path.isEmpty { continue }
                    while let next = pending.first, TreeManifest.precedes(LayerPath.whiteoutName(next), path) {
                        try writer.writeWhiteout(for: next)
                        pending.removeFirst()
                    }
                    archive_entry_copy_pathname(entry, path)
                    if let link = archive_entry_hardlink(entry) {
                        let rawTarget = String(cString: link)
                        guard let target = try? LayerPath.normalized(rawTarget), !target.isEmpty else {
                            throw BoxstackError(
                                .invalidData,
                                "the exported tree \(tarPath) links \(Terminal.quoted(rawName)) to \(Terminal.quoted(rawTarget)), outside the tree.")
                        }
                        archive_entry_copy_hardlink(entry, target)
                    }
                    archive_entry_set_uname(entry, nil)
                    archive_entry_set_gname(entry, nil)
                    try writer.write(entry: entry, contentFrom: reader.archive)
                }
                try reader.finish()
                for path in pending { try writer.writeWhiteout(for: path) }
            })
    }

    /// Writes whiteouts and entries merged in layer order; `writeEntry` writes one changed path.
    private static func merge(
        changed: [String], whiteouts: [String], writer: LayerWriter, writeEntry: (String) throws -> Void
    ) throws {
        var pending = whiteouts[...]
        for path in changed {
            while let next = pending.first, TreeManifest.precedes(LayerPath.whiteoutName(next), path) {
                try writer.writeWhiteout(for: next)
                pending.removeFirst()
            }
            try writeEntry(path)
        }
        for path in pending { try writer.writeWhiteout(for: path) }
    }

    /// The common part of both stash paths: lock, diff against the parent, write the layer through
    /// `writeLayer(writer, changedPaths, whiteoutPaths)`, then config, manifest and tag.
    private func writeStash(
        reference: StashReference, manifest tree: TreeManifest, compression: LayerCompression, architecture: String?,
        labels given: StashLabels?, createdBy: String, deletedOverride: [String]? = nil,
        writeLayer: (LayerWriter, [String], [String]) throws -> Void
    ) throws -> StashResult {
        let lock = try lock(name: reference.name)
        defer { _ = lock }
        let finalPath = layoutPath(name: reference.name)
        let isFirst = !OCILayout.exists(at: finalPath)
        // A first stash is built in a temporary layout and renamed into place, so failures leave nothing.
        let temporary = isFirst ? try StoreTemporary(store: directory) : nil
        let workingPath = temporary?.path ?? finalPath
        let layout = try OCILayout.create(at: workingPath)
        var success = false
        defer { if !success { temporary?.discard() } }

        let parent = try parent(layout: isFirst ? nil : layout, tag: reference.tag)
        let previousTree = try parent.flatMap { try storedTreeManifest(layout: layout, manifest: $0.manifest) }
        var (changed, deleted) = TreeManifest.changes(from: previousTree, to: tree)
        if let deletedOverride { deleted = deletedOverride }
        // A directory that became something else (or the reverse) needs a whiteout before its new entry.
        var whiteouts = deleted
        if let previousTree {
            let changedSet = Set(changed)
            var wasDirectory: [String: Bool] = [:]
            for entry in previousTree.entries where changedSet.contains(entry.path) { wasDirectory[entry.path] = entry.kind == .directory }
            for entry in tree.entries where changedSet.contains(entry.path) {
                if let before = wasDirectory[entry.path], before != (entry.kind == .directory) { whiteouts.append(entry.path) }
            }
        }
        whiteouts = Array(Set(whiteouts)).sorted { TreeManifest.precedes(LayerPath.whiteoutName($0), LayerPath.whiteoutName($1)) }

        // An unchanged tree adds no (empty) layer: the tag points at the image it extends.
        if let parent, previousTree != nil, changed.isEmpty, whiteouts.isEmpty {
            var descriptor = parent.descriptor
            descriptor.annotations = nil
            try layout.setTag(reference.tag, to: descriptor)
            success = true
            return StashResult(
                reference: reference, manifest: descriptor, layer: nil, layerCount: parent.manifest.layers.count,
                entryCount: 0, whiteoutCount: 0)
        }

        let writer = try LayerWriter(outputPath: layout.temporaryBlobPath(), compression: compression)
        try writeLayer(writer, changed, whiteouts)
        let written = try writer.finish()
        try layout.importBlob(fromFile: writer.outputPath, expectedDigest: written.digest, verified: true)
        let layer = Descriptor(mediaType: compression.mediaType, digest: written.digest, size: written.size)
        let treeBlob = try layout.writeBlob(tree.serialized(), mediaType: TreeManifest.mediaType)

        let now = OCIJSON.timestamp()
        var config =
            parent?.config
            ?? ImageConfig(architecture: architecture ?? Platform.goArchitecture(hostArchitecture))
        if let architecture { config.architecture = architecture }
        config.created = now
        config.rootfs.diffIDs.append(written.diffID)
        var history = config.history ?? []
        history.append(
            ImageConfig.History(
                created: now, createdBy: createdBy,
                comment: parent == nil ? "whole tree" : "\(changed.count) changed, \(whiteouts.count) deleted"))
        config.history = history
        var labels = config.labels
        labels[Label.created] = now
        if let given {
            for (key, value) in [
                (Label.descriptionName, given.descriptionName), (Label.descriptionVersion, given.descriptionVersion), (Label.author, given.author),
            ] {
                labels[key] = value
            }
            config.author = given.author
        }
        config.labels = labels
        let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
        let layers = (parent?.manifest.layers ?? []) + [layer]
        let manifest = Manifest(
            config: configBlob, layers: layers,
            annotations: [TreeManifest.annotation: treeBlob.digest.description, AnnotationKey.created: now])
        let manifestBlob = try layout.writeBlob(OCIJSON.encode(manifest), mediaType: MediaType.imageManifest)
        try layout.setTag(reference.tag, to: manifestBlob)
        if let temporary {
            guard rename(workingPath, finalPath) == 0 else {
                throw BoxstackError(.permission, "cannot move the new stash into \(finalPath): \(String(cString: strerror(errno))).")
            }
            temporary.kept()
        } else {
            try layout.garbageCollect()
        }
        success = true
        return StashResult(
            reference: reference, manifest: manifestBlob, layer: layer, layerCount: layers.count,
            entryCount: written.entryCount, whiteoutCount: whiteouts.count)
    }
}
