import BoxstackCore
import CLibArchive
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The digests a layer blob must have: the blob's own and, when known, its uncompressed tar's (diffID).
struct LayerDigests {
    var digest: ContentDigest
    var diffID: ContentDigest?
}

/// Reads one tar layer (any compression libarchive knows) entry by entry, and checks its digests
/// as the bytes stream by: every byte of the blob feeds the digest, every byte of the uncompressed
/// tar feeds the diffID.
///
/// Two libarchive readers are chained: a `raw`-format reader with every decompression filter turns
/// the blob (read by `readBlob`, which hashes it) into the tar stream, and a tar reader reads that
/// stream through `readTar`, which hashes it again. `finish()` reads what libarchive left unread
/// (the tar's zero blocks, trailing data) and compares; a mismatch names the blob.
final class LayerReader {
    let description: String
    private let path: String
    private let file: Int32
    private let decompressor: OpaquePointer
    private let tar: OpaquePointer
    private let expected: LayerDigests?
    private var blobHash = SHA256()
    private var tarHash = SHA256()
    private var blobBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var tarBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var readError: Int32 = 0
    private var decompressorAtEnd = false

    /// Opens the layer at `path` (shown as `description`), checking `expected` when given.
    init(path: String, description: String, expected: LayerDigests?) throws {
        self.path = path
        self.description = description
        self.expected = expected
        file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else {
            throw BoxstackError(.notFound, "cannot read \(description) (\(path)): \(String(cString: strerror(errno))).")
        }
        guard let decompressor = archive_read_new(), let tar = archive_read_new() else {
            close(file)
            throw BoxstackError(.internalError, "libarchive could not allocate a reader.")
        }
        self.decompressor = decompressor
        self.tar = tar
        archive_read_support_filter_all(decompressor)
        archive_read_support_format_raw(decompressor)
        archive_read_support_format_empty(decompressor)
        try start(decompressor, readingBlob: true)
        var raw: OpaquePointer?
        let status = archive_read_next_header(decompressor, &raw)
        if status == ARCHIVE_EOF { decompressorAtEnd = true }
        guard status == ARCHIVE_EOF || status >= ARCHIVE_WARN else {
            throw BoxstackError(.invalidData, "cannot read \(description): \(Self.message(decompressor)).")
        }
        archive_read_support_format_tar(tar)
        archive_read_support_format_empty(tar)
        try start(tar, readingBlob: false)
    }

    /// Opens `archive` reading through this reader's `readBlob` (the file) or `readTar` (the decompressor).
    private func start(_ archive: OpaquePointer, readingBlob: Bool) throws {
        archive_read_set_callback_data(archive, Unmanaged.passUnretained(self).toOpaque())
        if readingBlob {
            archive_read_set_read_callback(archive) { _, context, buffer in
                guard let context, let buffer else { return -1 }
                return Unmanaged<LayerReader>.fromOpaque(context).takeUnretainedValue().readBlob(buffer)
            }
        } else {
            archive_read_set_read_callback(archive) { _, context, buffer in
                guard let context, let buffer else { return -1 }
                return Unmanaged<LayerReader>.fromOpaque(context).takeUnretainedValue().readTar(buffer)
            }
        }
        guard archive_read_open1(archive) == ARCHIVE_OK else {
            throw BoxstackError(.invalidData, "cannot read \(description): \(Self.message(archive)).")
        }
    }

    deinit {
        archive_read_free(tar)
        archive_read_free(decompressor)
        close(file)
    }

    /// The tar reader, positioned at the current entry's data (for `LayerWriter.write(entry:contentFrom:)`).
    var archive: OpaquePointer { tar }

    /// The next entry's header, or nil after the last one.
    func next() throws -> OpaquePointer? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(tar, &entry)
        if status == ARCHIVE_EOF { return nil }
        guard status >= ARCHIVE_WARN, let entry else { throw damaged(tar) }
        return entry
    }

    /// Calls `body` with each block of the current entry's data and its offset in the file (sparse
    /// files have gaps between blocks).
    func readData(_ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let status = archive_read_data_block(tar, &block, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status >= ARCHIVE_WARN else { throw damaged(tar) }
            try body(UnsafeRawBufferPointer(start: block, count: size), offset)
        }
    }

    /// Reads the rest of the blob and checks its digests; throws `checksumMismatch` naming the blob.
    func finish() throws {
        while readTar(nil) > 0 {}
        if readError != 0 { throw BoxstackError(.invalidData, "cannot read \(description): \(String(cString: strerror(readError))).") }
        // Whatever follows the compressed stream belongs to the blob too.
        while true {
            let count = read(file, &blobBuffer, blobBuffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            blobBuffer.withUnsafeBytes { blobHash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
        guard let expected else { return }
        let digest = ContentDigest(sha256Hex: blobHash.finalize().hexString)
        guard digest == expected.digest else {
            throw BoxstackError(
                .checksumMismatch,
                "\(description): the blob \(path) has the digest \(digest), not \(expected.digest); it was changed after it was stored. Pull or stash it again."
            )
        }
        let diffID = ContentDigest(sha256Hex: tarHash.finalize().hexString)
        if let expectedDiffID = expected.diffID, diffID != expectedDiffID {
            throw BoxstackError(
                .checksumMismatch,
                "\(description): the blob \(expected.digest) unpacks to a tar with the diffID \(diffID), not \(expectedDiffID) as its image configuration says."
            )
        }
    }

    private func damaged(_ archive: OpaquePointer) -> BoxstackError {
        BoxstackError(.invalidData, "\(description) is damaged: \(Self.message(archive)).")
    }

    static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    // MARK: Callbacks

    private func readBlob(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        while true {
            let count = read(file, &blobBuffer, blobBuffer.count)
            if count < 0, errno == EINTR { continue }
            if count < 0 {
                readError = errno
                return -1
            }
            blobBuffer.withUnsafeBytes { bytes in
                blobHash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[..<count]))
                buffer.pointee = bytes.baseAddress
            }
            return count
        }
    }

    /// Hands the tar reader the next decompressed bytes (`buffer` nil: only hash them).
    private func readTar(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        guard !decompressorAtEnd else { return 0 }
        let count = tarBuffer.withUnsafeMutableBytes { archive_read_data(decompressor, $0.baseAddress, $0.count) }
        if count <= 0 {
            decompressorAtEnd = true
            if count < 0 {
                readError = readError != 0 ? readError : EIO
                return -1
            }
            return 0
        }
        tarBuffer.withUnsafeBytes { bytes in
            tarHash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[..<count]))
            buffer?.pointee = bytes.baseAddress
        }
        return count
    }
}
