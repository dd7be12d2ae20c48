import AsyncHTTPClient
import BoxstackCore
import Foundation
import Registry

/// A box's state in the cache.
public enum BoxStatus: Sendable, Equatable {
    case notFetched
    /// Cached and verified; `size` is the total of the box's files, `digest` the disk's.
    case cached(size: Int64, digest: ContentDigest)
    /// Cached, but the last update check saw newer versions of `changedFiles`.
    case updateAvailable(size: Int64, digest: ContentDigest, changedFiles: [String])
}

/// A verified box in the cache, ready to boot.
public struct CachedBox: Sendable, Equatable {
    public var name: String
    public var arch: String
    public var directory: String
    public var kernel: String
    public var initrd: String
    public var disk: String
    public var diskDigest: ContentDigest
    /// The verified digests of the kernel, the initrd and the disk, in that order.
    public var fileDigests: [ContentDigest]
    /// The total size of the box's files.
    public var size: Int64
    /// Guest memory in bytes.
    public var memory: Int64
    public var cpus: Int
    public var console: String
    /// Kernel arguments from the catalog, without `console=`.
    public var cmdline: [String]
    /// Set when `ensure` fell back to the cached box because the update check failed; worth showing the user.
    public var notice: String?

}

/// What a fetch did.
public struct FetchResult: Sendable {
    public var box: CachedBox
    /// Names of the files that were downloaded; empty when the cache was already up to date.
    public var downloadedFiles: [String]
    /// Box bytes transferred by this fetch (checksum files not counted).
    public var downloadedBytes: Int64
}

/// One line of `boxes list`.
public struct BoxListing: Sendable {
    public var box: BoxDefinition
    public var arch: String
    public var status: BoxStatus
}

/// The box cache: one directory per box and architecture with the verified files and a `state.json`.
///
/// Layout under `directory`:
/// - `boxes/<name>/<arch>/<files>`: the verified box files, plus `<file>.part` while downloading;
/// - `boxes/<name>/<arch>/state.json`: each file's verified digest, size, source URL and `.sha256` text;
/// - `locks/<name>.<arch>.lock`: held while a process reads or changes that entry.
///
/// A fetch asks the source only for checksums (or a manifest) first and downloads just the files whose
/// digest changed; files are verified before they are renamed into place, and the state file is
/// replaced last, so a failed fetch leaves the previous box complete and usable. Cached files are
/// trusted by their recorded digest and size; they are never re-hashed on a normal run.
public struct BoxCache: Sendable {
    public let directory: String
    /// Timeouts for boxes published in an OCI registry.
    public let registryTimeouts: RegistryTimeouts

    public init(paths: Paths = Paths(), registryTimeouts: RegistryTimeouts = RegistryTimeouts()) {
        self.init(directory: paths.cacheDirectory, registryTimeouts: registryTimeouts)
    }

    public init(directory: String, registryTimeouts: RegistryTimeouts = RegistryTimeouts()) {
        self.directory = directory
        self.registryTimeouts = registryTimeouts
    }

    func entryDirectory(_ name: String, _ arch: String) -> String { "\(directory)/boxes/\(name)/\(arch)" }
    private func statePath(_ name: String, _ arch: String) -> String { entryDirectory(name, arch) + "/state.json" }
    private func lockPath(_ name: String, _ arch: String) -> String { "\(directory)/locks/\(name).\(arch).lock" }

    // MARK: - Status

    /// The cached state of `box` for `arch`, from the state file alone (no network, no hashing).
    public func status(of box: BoxDefinition, arch: String) throws -> BoxStatus {
        guard let state = readState(box.name, arch), let cached = try? cachedBox(box, arch: arch, state: state) else {
            return .notFetched
        }
        if let changed = state.pendingUpdate, !changed.isEmpty {
            return .updateAvailable(size: cached.size, digest: cached.diskDigest, changedFiles: changed)
        }
        return .cached(size: cached.size, digest: cached.diskDigest)
    }

    /// Every box and architecture of `catalog` with its cached state.
    public func list(_ catalog: BoxCatalog) throws -> [BoxListing] {
        try catalog.boxes.flatMap { box in
            try box.architectures.map { BoxListing(box: box, arch: $0.arch, status: try status(of: box, arch: $0.arch)) }
        }
    }

    /// Asks the source whether the cached box is current, transferring only checksum files or a manifest,
    /// and remembers the answer for `status`.
    public func checkForUpdates(_ box: BoxDefinition, arch: String) async throws -> BoxStatus {
        let files = try box.architecture(arch)
        return try await withSource(files, of: box) { source in
            let published = try await source.describe(files.files)
            return try await withLock(box.name, arch, announce: false) {
                guard var state = readState(box.name, arch) else { return .notFetched }
                state.pendingUpdate = published.filter { !isCurrent($0, in: state, arch: arch, box: box.name) }.map(\.name)
                try writeState(state)
                return try status(of: box, arch: arch)
            }
        }
    }

    // MARK: - Fetch, update, remove

    /// Brings `box` for `arch` up to date: downloads what changed (or everything the first time),
    /// verifies it against the published digests and makes it visible atomically.
    ///
    /// - Parameter progress: draw progress bars on standard error when it is a terminal.
    /// - Throws: `BoxstackError` with one sentence on a checksum mismatch, HTTP error or broken-off
    ///   download; the previously cached box stays intact and usable, and a broken-off download
    ///   resumes on the next fetch.
    public func fetch(_ box: BoxDefinition, arch: String = hostArchitecture, progress: Bool = true) async throws -> FetchResult {
        let files = try box.architecture(arch)
        return try await withSource(files, of: box) { source in
            try await withLock(box.name, arch, announce: progress) {
                try await fetchLocked(box, files: files, source: source, progress: progress)
            }
        }
    }

    /// Updates the cached architectures of each of `boxes` (the host's when a box is not cached yet).
    public func update(_ boxes: [BoxDefinition], progress: Bool = true) async throws -> [FetchResult] {
        var results: [FetchResult] = []
        for box in boxes {
            var arches = box.architectures.map(\.arch).filter { readState(box.name, $0) != nil }
            if arches.isEmpty { arches = [hostArchitecture] }
            for arch in arches {
                results.append(try await fetch(box, arch: arch, progress: progress))
            }
        }
        return results
    }

    /// Removes every cached architecture of the box called `name`; returns false when nothing was cached.
    @discardableResult
    public func remove(_ name: String) async throws -> Bool {
        let boxDirectory = "\(directory)/boxes/\(name)"
        guard BoxDefinition.isValidName(name), FileManager.default.fileExists(atPath: boxDirectory) else { return false }
        let arches = (try? FileManager.default.contentsOfDirectory(atPath: boxDirectory)) ?? []
        for arch in arches where !arch.hasPrefix(".") {
            try await withLock(name, arch, announce: false) {
                // Rename first so no reader ever sees a half-deleted entry.
                let doomed = "\(boxDirectory)/.removing-\(arch)-\(UUID().uuidString)"
                guard rename(entryDirectory(name, arch), doomed) == 0 else {
                    throw BoxstackError(.permission, "Cannot remove \(entryDirectory(name, arch)): \(String(cString: strerror(errno))).")
                }
                try FileManager.default.removeItem(atPath: doomed)
            }
        }
        try? FileManager.default.removeItem(atPath: boxDirectory)
        return true
    }

    /// The box to boot for a boxed run. With `checkForUpdates` the source's checksums are compared first
    /// and changed files fetched; if that check cannot reach the source, a complete cached box is used and
    /// `notice` says so. Without it, a complete cached box is used as is and the network is not touched.
    public func ensure(
        _ box: BoxDefinition, arch: String = hostArchitecture, checkForUpdates: Bool = true, progress: Bool = true
    ) async throws -> CachedBox {
        // A box without a source can only be one its user built and put into the cache.
        if !checkForUpdates || (try? box.architecture(arch))?.source == nil, let cached = try await cachedIfComplete(box, arch: arch) {
            return cached
        }
        do {
            return try await fetch(box, arch: arch, progress: progress).box
        } catch let error as BoxstackError where error.code == .network {
            guard var cached = try await cachedIfComplete(box, arch: arch) else { throw error }
            cached.notice = "Could not check \(box.name) (\(arch)) for updates, so the cached box is used: \(error.message)"
            return cached
        }
    }

    private func cachedIfComplete(_ box: BoxDefinition, arch: String) async throws -> CachedBox? {
        try await withLock(box.name, arch, announce: false) {
            guard let state = readState(box.name, arch) else { return nil }
            return try? cachedBox(box, arch: arch, state: state)
        }
    }

    // MARK: - Internals

    private func fetchLocked(
        _ box: BoxDefinition, files: BoxArchitecture, source: any PublishedFileSource, progress: Bool
    ) async throws -> FetchResult {
        let entry = entryDirectory(box.name, files.arch)
        try FileManager.default.makeDirectory(entry)
        let old = readState(box.name, files.arch)
        let published = try await source.describe(files.files)

        // 1. Download and verify every changed file into its part; nothing visible changes yet.
        var ready: [(file: PublishedFile, part: PartialDownload, size: Int64)] = []
        var downloadedBytes: Int64 = 0
        for file in published where !(old.map { isCurrent(file, in: $0, arch: files.arch, box: box.name) } ?? false) {
            let part = try PartialDownload(directory: entry, name: file.name, url: file.location, digest: file.digest)
            let kept = part.size
            if !part.isComplete {
                let label = "\(box.name) \(file.name)"
                try await source.download(file, into: part, progress: DownloadProgress(label: label, enabled: progress && ProgressBar.isTerminal))
            }
            downloadedBytes += part.size - kept
            ready.append((file, part, try part.verify(source: file.location)))
        }

        // 2. Rename the verified files into place, then record them; the state file is replaced last.
        var records = old?.files ?? []
        for (file, part, size) in ready {
            try part.commit(to: "\(entry)/\(file.name)")
            records.removeAll { $0.role == file.role }
            records.append(
                CachedFileRecord(
                    role: file.role, name: file.name, location: file.location, digest: file.digest, size: size,
                    checksumText: file.checksumText))
        }
        for file in published {
            // Same content from a new place (a moved source) needs no download, only the new location.
            if let index = records.firstIndex(where: { $0.role == file.role }) { records[index].location = file.location }
        }
        let wanted = Set(published.map(\.name))
        let stale = records.filter { !wanted.contains($0.name) }
        records.removeAll { !wanted.contains($0.name) }
        let state = CacheState(box: box.name, arch: files.arch, source: files.sourceText, files: records, pendingUpdate: nil)
        try writeState(state)
        for record in stale { unlink("\(entry)/\(record.name)") }

        return FetchResult(
            box: try cachedBox(box, arch: files.arch, state: state), downloadedFiles: ready.map(\.file.name),
            downloadedBytes: downloadedBytes)
    }

    /// True when the cache already holds `file` with its published digest (trusting the recorded digest and size).
    private func isCurrent(_ file: PublishedFile, in state: CacheState, arch: String, box: String) -> Bool {
        guard let record = state.files.first(where: { $0.role == file.role }),
            record.name == file.name, record.digest == file.digest
        else { return false }
        return fileSize("\(entryDirectory(box, arch))/\(record.name)") == record.size
    }

    private func cachedBox(_ box: BoxDefinition, arch: String, state: CacheState) throws -> CachedBox {
        let files = try box.architecture(arch)
        let entry = entryDirectory(box.name, arch)
        var paths: [BoxFileRole: String] = [:]
        var size: Int64 = 0
        for (role, name) in files.files {
            guard let record = state.files.first(where: { $0.role == role && $0.name == name }),
                fileSize("\(entry)/\(name)") == record.size
            else {
                throw BoxstackError(.notFound, "The cached box \(box.name) (\(arch)) is incomplete; run boxstack boxes fetch \(box.name).")
            }
            paths[role] = "\(entry)/\(name)"
            size += record.size
        }
        guard let disk = state.files.first(where: { $0.role == .disk }), let kernel = paths[.kernel], let initrd = paths[.initrd],
            let diskPath = paths[.disk]
        else {
            throw BoxstackError(.internalError, "The cache state of \(box.name) (\(arch)) lacks a file it was checked to have.")
        }
        return CachedBox(
            name: box.name, arch: arch, directory: entry, kernel: kernel, initrd: initrd, disk: diskPath,
            diskDigest: disk.digest,
            fileDigests: [BoxFileRole.kernel, .initrd, .disk].compactMap { role in state.files.first { $0.role == role }?.digest },
            size: size, memory: box.memory, cpus: box.cpus,
            console: files.console ?? box.console, cmdline: files.cmdline, notice: nil)
    }

    private func fileSize(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    private func readState(_ name: String, _ arch: String) -> CacheState? {
        guard let data = FileManager.default.contents(atPath: statePath(name, arch)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(CacheState.self, from: data)
    }

    private func writeState(_ state: CacheState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(state).writeAtomically(to: statePath(state.box, state.arch))
    }

    /// Runs `body` holding the entry's lock. Waits without blocking a thread, so tasks of one process queue
    /// up as well as separate processes; announces the wait on a terminal.
    private func withLock<T>(_ name: String, _ arch: String, announce: Bool, _ body: () async throws -> T) async throws -> T {
        try FileManager.default.makeDirectory("\(directory)/locks")
        let path = lockPath(name, arch)
        var lock = try FileLock.attempt(path: path)
        if lock == nil, announce, ProgressBar.isTerminal {
            FileHandle.standardError.write(Data("Waiting for another boxstack to finish with \(name) (\(arch))...\n".utf8))
        }
        while lock == nil {
            try await Task.sleep(for: .milliseconds(50))
            lock = try FileLock.attempt(path: path)
        }
        // The lock is released when `lock` is, after `body` finished.
        defer { withExtendedLifetime(lock) {} }
        return try await body()
    }

    /// The sentence for a box that nobody publishes: how to get it.
    public static func noSource(_ box: BoxDefinition, arch: String) -> BoxstackError {
        BoxstackError(
            .notFound,
            "the box \(box.name) (\(arch)) has no published source in \(box.catalogPath) and is not in the cache; build it with 'boxstack boxes build \(box.name) --arch \(arch)', or use a catalog (BOXSTACK_CATALOG=FILE) whose entry names a source that publishes it."
        )
    }

    private func withSource<T: Sendable>(
        _ files: BoxArchitecture, of box: BoxDefinition, _ body: (any PublishedFileSource) async throws -> T
    ) async throws -> T {
        guard let source = files.source else { throw Self.noSource(box, arch: files.arch) }
        switch source {
        case .directory(let path):
            return try await body(DirectorySource(directory: path))
        case .web(let url):
            let client = HTTPClient(
                eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                configuration: .init(timeout: .init(connect: .seconds(5), read: .seconds(60))))
            do {
                let result = try await body(WebSource(base: url, client: client))
                try await client.shutdown()
                return result
            } catch {
                try? await client.shutdown()
                throw error
            }
        case .oci(let registry, let repository, let reference):
            return try await RegistryClient.withClient(registry: registry, timeouts: registryTimeouts) { client in
                try await body(OCISource(client: client, repository: repository, reference: reference))
            }
        }
    }
}

/// What `state.json` records for one box and architecture.
struct CacheState: Codable {
    var box: String
    var arch: String
    var source: String
    var files: [CachedFileRecord]
    /// Files whose published digest differed at the last update check that did not download them.
    var pendingUpdate: [String]?
}

struct CachedFileRecord: Codable {
    var role: BoxFileRole
    var name: String
    var location: String
    var digest: ContentDigest
    var size: Int64
    var checksumText: String?
    var verified = Date()
}
