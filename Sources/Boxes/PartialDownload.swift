import BoxstackCore
import Crypto
import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A download in progress: `<name>.part` beside the cache entry, hashed while it is written.
///
/// Chunks are hashed and written on a thread of their own (`append` only queues them), so the
/// receive loop never waits for SHA-256: over loopback, hashing a box takes about as long as
/// receiving it, and doing both in turn halved the throughput.
///
/// `<name>.part.json` records the URL and the digest the part is meant to reach, so a later run can resume
/// it (after re-hashing the bytes already there) instead of starting over. Nothing here is visible under the
/// file's real name until `commit` has checked the digest and renamed the part into place.
final class PartialDownload {
    struct Record: Codable, Equatable {
        var url: String
        var digest: ContentDigest
    }

    let name: String
    let partPath: String
    let recordPath: String
    let record: Record
    private var writtenSize: Int64 = 0
    /// Bytes of the part, once everything queued is written.
    var size: Int64 {
        try? flush()
        return writtenSize
    }
    private var hasher = SHA256()
    /// Set when a verifying downloader (the registry client) wrote the part in one go.
    private var verifiedElsewhere = false
    private var descriptor: Int32 = -1
    private var writer: ChunkWriter!

    /// Opens the part for `name` in `directory`, keeping the bytes of an earlier attempt at the same URL and digest.
    init(directory: String, name: String, url: String, digest: ContentDigest) throws {
        self.name = name
        partPath = "\(directory)/\(name).part"
        recordPath = "\(directory)/\(name).part.json"
        record = Record(url: url, digest: digest)

        let earlier = FileManager.default.contents(atPath: recordPath).flatMap { try? JSONDecoder().decode(Record.self, from: $0) }
        if earlier == record, FileManager.default.fileExists(atPath: partPath) {
            try rehashExistingPart()
        } else {
            unlink(partPath)
            try JSONEncoder().encode(record).writeAtomically(to: recordPath)
        }
        descriptor = open(partPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw BoxstackError(.permission, "Cannot write \(partPath): \(String(cString: strerror(errno))).")
        }
        writer = ChunkWriter(descriptor: descriptor, path: partPath, hasher: hasher, size: writtenSize)
    }

    deinit {
        writer?.stop()
        if descriptor >= 0 { close(descriptor) }
    }

    /// Bytes kept from an earlier attempt; a resumed request asks for the rest.
    var resumeOffset: Int64 { size }

    /// True when the kept bytes already are the whole file (an earlier run verified it but stopped before
    /// committing, for example because another file of the box failed).
    var isComplete: Bool {
        guard (try? flush()) != nil else { return false }
        let copy = hasher
        return writtenSize > 0 && ContentDigest(sha256Hex: copy.finalize().hexString) == record.digest
    }

    /// Queues the next bytes of the body to be hashed and appended; throws an earlier write error.
    func append(_ chunk: ByteBuffer) throws {
        try writer.enqueue(chunk)
    }

    /// Waits until every queued chunk is hashed and written; throws the first write error.
    private func flush() throws {
        guard !verifiedElsewhere else { return }
        let (hash, written) = try writer.drain()
        hasher = hash
        writtenSize = written
    }

    /// Drops the bytes kept so far, for a server that answered a range request with the whole file.
    func restart() throws {
        try flush()
        // Truncating even an empty file makes ext4 write the whole file back when it is closed
        // (its auto_da_alloc rule for files truncated to zero): about 0.2 s of the closing thread per 500 MB.
        guard writtenSize > 0 else { return }
        guard ftruncate(descriptor, 0) == 0 else {
            throw BoxstackError(.permission, "Cannot truncate \(partPath): \(String(cString: strerror(errno))).")
        }
        hasher = SHA256()
        writtenSize = 0
        writer.reset(hasher: hasher, size: 0)
    }

    /// Accepts a part that a downloader which checks the digest itself has put at `partPath`.
    func adoptVerifiedFile() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: partPath)
        writtenSize = (attributes[.size] as? Int64) ?? 0
        verifiedElsewhere = true
    }

    /// Checks the finished part against the expected digest; on a mismatch the part is deleted.
    /// Returns the verified size.
    func verify(source: String) throws -> Int64 {
        if verifiedElsewhere { return writtenSize }
        try flush()
        let actual = ContentDigest(sha256Hex: hasher.finalize().hexString)
        guard actual == record.digest else {
            discard()
            throw BoxstackError(
                .checksumMismatch,
                "\(name) from \(source) does not match its published checksum (expected \(record.digest), got \(actual)); the cached box was left unchanged."
            )
        }
        return size
    }

    /// Renames the verified part to `path`, replacing the old file in one step.
    func commit(to path: String) throws {
        try flush()
        writer.stop()
        close(descriptor)
        descriptor = -1
        guard rename(partPath, path) == 0 else {
            throw BoxstackError(.permission, "Cannot rename \(partPath) to \(path): \(String(cString: strerror(errno))).")
        }
        unlink(recordPath)
    }

    /// Removes the part and its record.
    func discard() {
        unlink(partPath)
        unlink(recordPath)
    }

    private func rehashExistingPart() throws {
        guard let handle = FileHandle(forReadingAtPath: partPath) else { return }
        defer { try? handle.close() }
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            writtenSize += Int64(chunk.count)
        }
    }
}

/// The thread that hashes and writes a download's chunks in order, at most `limit` bytes behind.
private final class ChunkWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [ByteBuffer] = []
    private var pendingBytes = 0
    private var busy = false
    private var stopped = false
    private var failure: BoxstackError?
    private var hasher: SHA256
    private var size: Int64
    private let descriptor: Int32
    private let path: String
    private let limit = 64 << 20

    init(descriptor: Int32, path: String, hasher: SHA256, size: Int64) {
        self.descriptor = descriptor
        self.path = path
        self.hasher = hasher
        self.size = size
        let thread = Thread { [self] in work() }
        thread.name = "boxstack-download-writer"
        thread.start()
    }

    func enqueue(_ chunk: ByteBuffer) throws {
        condition.lock()
        defer { condition.unlock() }
        while pendingBytes > limit, failure == nil { condition.wait() }
        if let failure { throw failure }
        pending.append(chunk)
        pendingBytes += chunk.readableBytes
        condition.broadcast()
    }

    /// Waits for the queue to empty; returns the hash state and the size written so far.
    func drain() throws -> (SHA256, Int64) {
        condition.lock()
        defer { condition.unlock() }
        while !pending.isEmpty || busy, failure == nil { condition.wait() }
        if let failure { throw failure }
        return (hasher, size)
    }

    func reset(hasher: SHA256, size: Int64) {
        condition.lock()
        self.hasher = hasher
        self.size = size
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        condition.lock()
        while true {
            while pending.isEmpty, !stopped { condition.wait() }
            if pending.isEmpty, stopped { break }
            let batch = pending
            pending = []
            busy = true
            var state = hasher
            condition.unlock()
            var error: BoxstackError?
            var written: Int64 = 0
            for chunk in batch where error == nil {
                chunk.withUnsafeReadableBytes { bytes in
                    state.update(bufferPointer: bytes)
                    let failure = FileDescriptor.writeAll(bytes, to: descriptor)
                    if failure != 0 { error = BoxstackError(.permission, "Cannot write \(path): \(String(cString: strerror(failure))).") }
                }
                written += Int64(chunk.readableBytes)
            }
            condition.lock()
            busy = false
            hasher = state
            size += written
            pendingBytes -= batch.reduce(0) { $0 + $1.readableBytes }
            if let error, failure == nil { failure = error }
            condition.broadcast()
        }
        condition.unlock()
    }

}
