import BoxstackCore
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A download in progress: `<name>.part` beside the cache entry, hashed while it is written.
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
    private(set) var size: Int64 = 0
    private var hasher = SHA256()
    /// Set when a verifying downloader (the registry client) wrote the part in one go.
    private var verifiedElsewhere = false
    private var descriptor: Int32 = -1

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
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Bytes kept from an earlier attempt; a resumed request asks for the rest.
    var resumeOffset: Int64 { size }

    /// True when the kept bytes already are the whole file (an earlier run verified it but stopped before
    /// committing, for example because another file of the box failed).
    var isComplete: Bool {
        let copy = hasher
        return size > 0 && ContentDigest(sha256Hex: copy.finalize().hexString) == record.digest
    }

    /// Appends and hashes the next bytes of the body.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        hasher.update(bufferPointer: bytes)
        var written = 0
        while written < bytes.count {
            let result = write(descriptor, base + written, bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw BoxstackError(.permission, "Cannot write \(partPath): \(String(cString: strerror(errno))).")
            }
            written += result
        }
        size += Int64(bytes.count)
    }

    /// Drops the bytes kept so far, for a server that answered a range request with the whole file.
    func restart() throws {
        guard ftruncate(descriptor, 0) == 0 else {
            throw BoxstackError(.permission, "Cannot truncate \(partPath): \(String(cString: strerror(errno))).")
        }
        hasher = SHA256()
        size = 0
    }

    /// Accepts a part that a downloader which checks the digest itself has put at `partPath`.
    func adoptVerifiedFile() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: partPath)
        size = (attributes[.size] as? Int64) ?? 0
        verifiedElsewhere = true
    }

    /// Checks the finished part against the expected digest; on a mismatch the part is deleted.
    /// Returns the verified size.
    func verify(source: String) throws -> Int64 {
        if verifiedElsewhere { return size }
        let actual = ContentDigest(sha256Hex: hasher.finalize().hexString)
        guard actual == record.digest else {
            discard()
            throw BoxstackError(
                .checksumMismatch,
                "\(name) from \(source) does not match its published checksum (expected \(record.digest), got \(actual)); the cached box was left unchanged.")
        }
        return size
    }

    /// Renames the verified part to `path`, replacing the old file in one step.
    func commit(to path: String) throws {
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
            size += Int64(chunk.count)
        }
    }
}
