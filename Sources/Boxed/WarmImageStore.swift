import BoxstackCore
import Foundation
import Guest
import Machine

#if canImport(Glibc)
    import Glibc
#endif

/// What a finished warm slot records beside its files; written last, so a slot without it holds no image.
struct WarmImageRecord: Codable, Equatable {
    /// The UUID the domain was saved with: a restore must keep it.
    var uuid: String
    var key: String
    var layout: Int
    var agentProtocol: Int
    /// `WarmImageStore.fingerprint` of the kernel, initrd and disk the image was made from.
    var boxFiles: [String: String]
    var created: Date
}

/// The user's warm images: `<cache>/warm/<key>/slot-<n>/` with the saved guest (`state`), the disk as
/// it was at that moment (`disk.qcow2`, an overlay on the box disk) and `warm.json`. `slot-<n>.lock` is held by the run using the slot.
///
/// libvirt restores a saved guest only under the name and UUID it was saved with, so one image serves
/// one run at a time: concurrent runs of one box shape each take a slot of their own.
public struct WarmImageStore: Sendable {
    public let directory: String
    /// Slots per box shape: concurrent runs beyond this boot cold.
    public static let slotsPerShape = 8

    public init(paths: Paths) { directory = paths.cacheDirectory + "/warm" }

    /// Takes the first free slot of `key`'s shape, preferring one that holds an image; nil when every
    /// slot is in use.
    func acquireSlot(for key: WarmImageKey) throws -> WarmSlot? {
        let shape = directory + "/" + key.hex
        try FileManager.default.makeDirectory(shape, mode: 0o700)
        var empty: WarmSlot?
        for index in 0..<Self.slotsPerShape {
            guard let lock = try FileLock.attempt(path: "\(shape)/slot-\(index).lock") else { continue }
            let slot = WarmSlot(directory: "\(shape)/slot-\(index)", index: index, key: key, lock: lock)
            if slot.record != nil {
                empty?.release()
                return slot
            }
            if empty == nil { empty = slot } else { slot.release() }
        }
        return empty
    }

    /// `path:size:mtime:inode`: changes when a box file is replaced or rewritten.
    static func fingerprint(of path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "\(path):missing" }
        return "\(path):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ino)"
    }

    /// Removes warm images no run can use any more: made from box files that changed or are gone, by
    /// another agent protocol or domain layout, or left half-made by a run that died. Slots in use are
    /// left alone. With `all`, every image that is not in use goes. Returns the slots removed.
    @discardableResult
    public func collectGarbage(all: Bool = false) throws -> [String] {
        guard let shapes = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for shape in shapes.sorted() {
            let shapeDirectory = directory + "/" + shape
            let slots = ((try? FileManager.default.contentsOfDirectory(atPath: shapeDirectory)) ?? []).filter {
                $0.hasPrefix("slot-") && !$0.hasSuffix(".lock")
            }
            for name in slots.sorted() {
                guard let lock = try FileLock.attempt(path: "\(shapeDirectory)/\(name).lock") else { continue }
                let slotDirectory = "\(shapeDirectory)/\(name)"
                let record = WarmSlot.readRecord(in: slotDirectory)
                if all || record.map(isStale) ?? true {
                    try? FileManager.default.removeItem(atPath: slotDirectory)
                    try? FileManager.default.removeItem(atPath: "\(shapeDirectory)/\(name).lock")
                    removed.append("\(shape)/\(name)")
                }
                withExtendedLifetime(lock) {}
            }
            let rest = (try? FileManager.default.contentsOfDirectory(atPath: shapeDirectory)) ?? []
            if rest.isEmpty { try? FileManager.default.removeItem(atPath: shapeDirectory) }
        }
        return removed
    }

    func isStale(_ record: WarmImageRecord) -> Bool {
        record.layout != WarmImageKey.layoutVersion || record.agentProtocol != GuestAgent.protocolVersion
            || record.boxFiles.contains { path, fingerprint in Self.fingerprint(of: path) != fingerprint }
    }

    /// The images in the store and their size on disk.
    public func list() -> [(slot: String, bytes: Int64, created: Date)] {
        guard let shapes = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var images: [(String, Int64, Date)] = []
        for shape in shapes.sorted() {
            let shapeDirectory = directory + "/" + shape
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: shapeDirectory)) ?? []).sorted()
            where !name.hasSuffix(".lock") {
                guard let record = WarmSlot.readRecord(in: "\(shapeDirectory)/\(name)") else { continue }
                let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(shapeDirectory)/\(name)")) ?? []
                let bytes = files.reduce(Int64(0)) { total, file in
                    var info = stat()
                    return total + (stat("\(shapeDirectory)/\(name)/\(file)", &info) == 0 ? Int64(info.st_blocks) * 512 : 0)
                }
                images.append(("\(shape)/\(name)", bytes, record.created))
            }
        }
        return images
    }
}

/// One slot of a box shape, locked by the run that holds it.
final class WarmSlot: @unchecked Sendable {
    let directory: String
    let index: Int
    let key: WarmImageKey
    private let lock: LockedBox<FileLock?>

    /// The name every domain of this slot has: libvirt restores only under the saved name. It is drawn
    /// from the real path of the shape's directory (which exists while a slot is held), so slots of one
    /// shape in two caches (another `BOXSTACK_CACHE_DIR`) never share a name: a run that finds its slot
    /// free destroys a domain under that name as a leftover. Fixed when the slot is taken, so the making,
    /// the restore and the teardown of one run name the same domain.
    let domainName: String

    init(directory: String, index: Int, key: WarmImageKey, lock: FileLock) {
        self.directory = directory
        self.index = index
        self.key = key
        self.lock = LockedBox(lock)
        let shape = URL(fileURLWithPath: directory).deletingLastPathComponent().resolvingSymlinksInPath().path
        domainName = "\(RunDirectory.domainPrefix)warm-\(ContentDigest.of(Data(shape.utf8)).hex.prefix(12))-\(index)"
    }

    var lockPath: String { directory + ".lock" }
    var statePath: String { directory + "/state" }
    var diskPath: String { directory + "/disk.qcow2" }
    var recordPath: String { directory + "/warm.json" }

    /// The finished image's record, or nil when the slot holds none (or one of another key).
    var record: WarmImageRecord? {
        guard let record = Self.readRecord(in: directory), record.key == key.hex,
            [statePath, diskPath].allSatisfy(FileManager.default.fileExists(atPath:))
        else { return nil }
        return record
    }

    static func readRecord(in directory: String) -> WarmImageRecord? {
        guard let data = FileManager.default.contents(atPath: directory + "/warm.json") else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(WarmImageRecord.self, from: data)
    }

    /// An empty slot directory for a new image.
    func clear() throws {
        discard()
        try FileManager.default.makeDirectory(directory, mode: 0o700)
    }

    /// Deletes the image (a bad one, or to make a new one); the slot stays locked.
    func discard() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func writeRecord(_ record: WarmImageRecord) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(record).writeAtomically(to: recordPath, mode: 0o600)
    }

    func release() { lock.value = nil }
}
