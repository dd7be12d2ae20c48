import BoxstackCore
import Foundation

/// One box file as its source publishes it: where to get it and the digest it must have.
struct PublishedFile: Sendable {
    var role: BoxFileRole
    var name: String
    /// The URL (or path) the bytes come from, as recorded in the cache state.
    var location: String
    var digest: ContentDigest
    /// The `FILE.sha256` text it was published with (nil for OCI, where the manifest carries the digest).
    var checksumText: String?
    /// The size, when the source announces it ahead of the download.
    var size: Int64?
}

/// Reads what a source publishes and streams its files into partial downloads.
protocol PublishedFileSource: Sendable {
    /// Looks up the digests of `files`; only small checksum files or a manifest are transferred.
    func describe(_ files: [(role: BoxFileRole, name: String)]) async throws -> [PublishedFile]
    /// Streams `file` into `part`, continuing after the part's kept bytes where the source allows it.
    func download(_ file: PublishedFile, into part: PartialDownload, progress: DownloadProgress) async throws
}

/// Draws a progress bar per file on a terminal, and nothing otherwise.
struct DownloadProgress: Sendable {
    var label: String
    var enabled: Bool

    /// A bar for a download of `total` bytes (nil when the source does not say).
    func bar(total: Int64?) -> ProgressBar {
        ProgressBar(label: label, total: total, enabled: enabled)
    }
}

/// Parses `sha256sum` output for `fileName`: `<64 hex>  <name>` (a `*` before the name marks binary mode).
func parseChecksumFile(_ text: String, fileName: String, source: String) throws -> ContentDigest {
    let bad = BoxstackError(
        .invalidData, "\(source) is not a sha256sum line for \(fileName); republish the box with its FILE.sha256 files.")
    guard let line = text.split(whereSeparator: \.isNewline).first(where: { !$0.isEmpty }) else { throw bad }
    let fields = line.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
    guard let hex = fields.first, hex.count == 64, hex.allSatisfy(\.isHexDigit) else { throw bad }
    if fields.count == 2 {
        var named = fields[1].trimmingCharacters(in: .whitespaces)
        if named.hasPrefix("*") { named.removeFirst() }
        guard (named as NSString).lastPathComponent == fileName else {
            throw BoxstackError(.invalidData, "\(source) is the checksum of \(named), not of \(fileName).")
        }
    }
    return ContentDigest(sha256Hex: String(hex))
}
