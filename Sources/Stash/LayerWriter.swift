import BoxstackCore
import CLibArchive
import Crypto
import Foundation
import OCI

#if canImport(Glibc)
    import Glibc
#endif

/// The result of writing one layer blob.
struct WrittenLayer {
    /// sha256 of the uncompressed tar (the OCI diffID).
    var diffID: ContentDigest
    /// sha256 of the compressed blob.
    var digest: ContentDigest
    /// Size of the compressed blob.
    var size: Int64
    var entryCount: Int
}

/// Writes a pax tar layer with libarchive and compresses it, hashing both streams in the same pass.
///
/// Two writers are chained: the tar writer's output goes to a callback that feeds the diffID hash and
/// then the compressor (gzip members on every core, or a `raw`-format libarchive writer holding the zstd
/// filter), whose output feeds the digest hash and the file. Each byte is produced, hashed and compressed
/// exactly once.
final class LayerWriter {
    private let tar: OpaquePointer
    private let compressor: OpaquePointer
    private let output: Int32
    let outputPath: String
    private var uncompressedHash = SHA256()
    private var compressedHash = SHA256()
    private var compressedSize: Int64 = 0
    private var writeError: Int32 = 0
    private(set) var entryCount = 0
    private var finished = false
    private let linkResolver: OpaquePointer?
    /// gzip on every core; zstd and uncompressed layers go through `compressor`.
    private var gzip: ParallelGzipCompressor?
    /// Bytes copied per read from a source file.
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)

    init(outputPath: String, compression: LayerCompression) throws {
        self.outputPath = outputPath
        output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else {
            throw BoxstackError(.permission, "cannot create \(outputPath): \(String(cString: strerror(errno))).")
        }
        guard let tar = archive_write_new(), let compressor = archive_write_new() else {
            close(output)
            throw BoxstackError(.internalError, "libarchive could not allocate a writer.")
        }
        self.tar = tar
        self.compressor = compressor
        linkResolver = archive_entry_linkresolver_new()
        archive_entry_linkresolver_set_strategy(linkResolver, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE)
        try configure(compression: compression)
    }

    deinit {
        archive_write_free(tar)
        archive_write_free(compressor)
        archive_entry_linkresolver_free(linkResolver)
        if !finished {
            close(output)
            unlink(outputPath)
        }
    }

    private func configure(compression: LayerCompression) throws {
        archive_write_set_format_raw(compressor)
        switch compression {
        case .zstd:
            archive_write_add_filter_zstd(compressor)
            archive_write_set_filter_option(compressor, "zstd", "compression-level", "3")
            // Multi-threaded compression; libarchive ignores the option where libzstd lacks threads.
            let threads = String(max(1, ProcessInfo.processInfo.activeProcessorCount))
            archive_write_set_filter_option(compressor, "zstd", "threads", threads)
        case .gzip:
            // The compressor calls back on this writer's thread only, while the writer owns it.
            gzip = ParallelGzipCompressor { [unowned self] bytes in
                guard let base = bytes.baseAddress else { return 0 }
                return writeCompressed(base, bytes.count) < 0 ? writeError : 0
            }
        case .none:
            break
        }
        try start(compressor, compressed: true, what: "the compressor")
        let rawEntry = archive_entry_new()
        archive_entry_set_filetype(rawEntry, ArchiveFileType.regular)
        archive_entry_set_pathname(rawEntry, "layer.tar")
        let headerStatus = archive_write_header(compressor, rawEntry)
        archive_entry_free(rawEntry)
        guard headerStatus == ARCHIVE_OK else { throw libarchiveError(compressor, "cannot start the compressor") }

        // Full pax keeps sub-second mtimes, which change detection compares.
        archive_write_set_format_pax(tar)
        try start(tar, compressed: false, what: "the tar writer")
    }

    /// Opens `archive` in 1 MiB blocks, writing through this writer's `writeCompressed` (the file) or
    /// `writeUncompressed` (the compressor).
    private func start(_ archive: OpaquePointer, compressed: Bool, what: String) throws {
        let context = Unmanaged.passUnretained(self).toOpaque()
        archive_write_set_bytes_per_block(archive, 1 << 20)
        archive_write_set_bytes_in_last_block(archive, 1)
        let status =
            compressed
            ? archive_write_open2(
                archive, context, nil,
                { _, context, bytes, length in
                    guard let context, let bytes else { return -1 }
                    return Unmanaged<LayerWriter>.fromOpaque(context).takeUnretainedValue().writeCompressed(bytes, length)
                }, nil, nil)
            : archive_write_open2(
                archive, context, nil,
                { _, context, bytes, length in
                    guard let context, let bytes else { return -1 }
                    return Unmanaged<LayerWriter>.fromOpaque(context).takeUnretainedValue().writeUncompressed(bytes, length)
                }, nil, nil)
        guard status == ARCHIVE_OK else { throw libarchiveError(archive, "cannot start \(what)") }
    }

    private func writeUncompressed(_ bytes: UnsafeRawPointer, _ length: Int) -> Int {
        uncompressedHash.update(bufferPointer: UnsafeRawBufferPointer(start: bytes, count: length))
        if let gzip {
            let failure = gzip.write(UnsafeRawBufferPointer(start: bytes, count: length))
            if failure != 0 { writeError = failure }
            return failure == 0 ? length : -1
        }
        var offset = 0
        while offset < length {
            let written = archive_write_data(compressor, bytes + offset, length - offset)
            guard written > 0 else { return -1 }
            offset += written
        }
        return length
    }

    private func writeCompressed(_ bytes: UnsafeRawPointer, _ length: Int) -> Int {
        compressedHash.update(bufferPointer: UnsafeRawBufferPointer(start: bytes, count: length))
        let failure = FileDescriptor.writeAll(UnsafeRawBufferPointer(start: bytes, count: length), to: output)
        if failure != 0 {
            writeError = failure
            return -1
        }
        compressedSize += Int64(length)
        return length
    }

    private func libarchiveError(_ archive: OpaquePointer, _ what: String) -> BoxstackError {
        if writeError != 0 {
            return BoxstackError(.permission, "\(what): writing \(outputPath) failed: \(String(cString: strerror(writeError))).")
        }
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
        return BoxstackError(.internalError, "\(what): \(message).")
    }

    /// Writes a whiteout for `path` (`dir/.wh.name`): an empty regular file.
    func writeWhiteout(for path: String) throws {
        let name = LayerPath.whiteoutName(path)
        guard let entry = archive_entry_new() else { throw BoxstackError(.internalError, "libarchive could not allocate an entry.") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, ArchiveFileType.regular)
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_size(entry, 0)
        try writeHeader(entry, path: name)
    }

    /// Writes `entry` (pathname already relative) and, for regular files with content, the data read
    /// from `sourcePath`. Hard links are resolved across the entries of this layer.
    func write(entry: OpaquePointer, contentFrom sourcePath: String?) throws {
        var current: OpaquePointer? = entry
        var spare: OpaquePointer? = nil
        if archive_entry_nlink(entry) > 1, archive_entry_filetype(entry) != ArchiveFileType.directory {
            archive_entry_linkify(linkResolver, &current, &spare)
        }
        guard let current else { return }
        let path = String(cString: archive_entry_pathname(current))
        try writeHeader(current, path: path)
        if archive_entry_size(current) > 0, archive_entry_filetype(current) == ArchiveFileType.regular,
            archive_entry_hardlink(current) == nil, let sourcePath
        {
            try copyContent(from: sourcePath, size: archive_entry_size(current), path: path)
        }
    }

    /// Writes a header and copies the entry's data from a libarchive reader positioned at its data.
    func write(entry: OpaquePointer, contentFrom reader: OpaquePointer) throws {
        let path = String(cString: archive_entry_pathname(entry))
        try writeHeader(entry, path: path)
        guard archive_entry_size(entry) > 0, archive_entry_hardlink(entry) == nil else { return }
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(reader, $0.baseAddress, $0.count) }
            if count == 0 { break }
            guard count > 0 else {
                let message = archive_error_string(reader).map { String(cString: $0) } ?? "read error"
                throw BoxstackError(.invalidData, "cannot read \(path) from the exported tar: \(message).")
            }
            try buffer.withUnsafeBytes { try writeData($0.baseAddress!, count, path: path) }
        }
    }

    private func writeHeader(_ entry: OpaquePointer, path: String) throws {
        let status = archive_write_header(tar, entry)
        guard status >= ARCHIVE_WARN else { throw libarchiveError(tar, "cannot add \(path) to the layer") }
        entryCount += 1
    }

    private func writeData(_ bytes: UnsafeRawPointer, _ count: Int, path: String) throws {
        var offset = 0
        while offset < count {
            let written = archive_write_data(tar, bytes + offset, count - offset)
            guard written > 0 else { throw libarchiveError(tar, "cannot add \(path) to the layer") }
            offset += written
        }
    }

    private func copyContent(from sourcePath: String, size: Int64, path: String) throws {
        let input = open(sourcePath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else {
            throw BoxstackError(
                .permission,
                "cannot read \(sourcePath) (\(String(cString: strerror(errno)))); stash a tree you can read: run as root, or stash from the box with --keep-root."
            )
        }
        defer { close(input) }
        var remaining = size
        while remaining > 0 {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, min($0.count, Int(remaining))) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                throw BoxstackError(.invalidData, "\(sourcePath) changed while it was being stashed (it got shorter); stash again.")
            }
            try buffer.withUnsafeBytes { try writeData($0.baseAddress!, count, path: path) }
            remaining -= Int64(count)
        }
    }

    /// Closes both writers and the file; returns the hashes and size.
    func finish() throws -> WrittenLayer {
        guard archive_write_close(tar) == ARCHIVE_OK else { throw libarchiveError(tar, "cannot finish the layer") }
        guard archive_write_close(compressor) == ARCHIVE_OK else { throw libarchiveError(compressor, "cannot finish the layer") }
        try gzip?.finish()
        guard fsync(output) == 0 || errno == EINVAL, close(output) == 0 else {
            throw BoxstackError(.permission, "cannot write \(outputPath): \(String(cString: strerror(errno))).")
        }
        finished = true
        return WrittenLayer(
            diffID: ContentDigest(sha256Hex: uncompressedHash.finalize().hexString),
            digest: ContentDigest(sha256Hex: compressedHash.finalize().hexString), size: compressedSize,
            entryCount: entryCount)
    }
}

/// libarchive's `AE_IF*` file types (C macros with casts, which Swift does not import).
enum ArchiveFileType {
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let fifo: UInt32 = 0o010000
    static let socket: UInt32 = 0o140000
}
