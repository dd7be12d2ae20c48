import BoxstackCore
import Foundation
import NIOCore

/// A local directory holding the box files and their `.sha256` files (`file://` or a catalog-relative path).
struct DirectorySource: PublishedFileSource {
    let directory: String

    func describe(_ files: [(role: BoxFileRole, name: String)]) async throws -> [PublishedFile] {
        try files.map { role, name in
            let path = "\(directory)/\(name)"
            let checksumPath = path + ".sha256"
            guard let data = FileManager.default.contents(atPath: checksumPath) else {
                throw BoxstackError(
                    .notFound, "\(checksumPath) does not exist; build or publish the box there first (each file needs a FILE.sha256 beside it).")
            }
            let text = String(decoding: data, as: UTF8.self)
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? nil
            return PublishedFile(
                role: role, name: name, location: path,
                digest: try parseChecksumFile(text, fileName: name, source: checksumPath),
                checksumText: text, size: size)
        }
    }

    func download(_ file: PublishedFile, into part: PartialDownload, progress: DownloadProgress) async throws {
        guard let handle = FileHandle(forReadingAtPath: file.location) else {
            throw BoxstackError(.notFound, "Cannot read \(file.location); the cached box was left unchanged.")
        }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(part.resumeOffset))
        let bar = progress.bar(total: file.size)
        bar.set(part.resumeOffset)
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            try Task.checkCancellation()
            try part.append(ByteBuffer(bytes: chunk))
            bar.advance(by: Int64(chunk.count))
        }
        bar.finish()
    }
}
