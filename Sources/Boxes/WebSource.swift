import AsyncHTTPClient
import BoxstackCore
import Foundation
import NIOCore

/// An `http://` or `https://` directory (also what `obs://` maps to) with `FILE.sha256` beside each file.
struct WebSource: PublishedFileSource {
    let base: URL
    let client: HTTPClient

    /// Checksum files are tiny; anything larger is not one.
    private static let checksumLimit = 64 << 10

    func url(of name: String) -> String {
        let escaped = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name
        return base.absoluteString + escaped
    }

    func describe(_ files: [(role: BoxFileRole, name: String)]) async throws -> [PublishedFile] {
        // The checksum requests are independent; run them together so an update check costs one round trip.
        try await withThrowingTaskGroup(of: PublishedFile.self) { group in
            for (role, name) in files {
                group.addTask { try await describe(role: role, name: name) }
            }
            var described: [PublishedFile] = []
            for try await file in group { described.append(file) }
            return files.compactMap { wanted in described.first { $0.role == wanted.role } }
        }
    }

    private func describe(role: BoxFileRole, name: String) async throws -> PublishedFile {
        let checksumURL = url(of: name) + ".sha256"
        let text: String
        do {
            let response = try await client.execute(HTTPClientRequest(url: checksumURL), timeout: .seconds(30))
            guard response.status.code == 200 else {
                throw BoxstackError(.network, "\(checksumURL) answered HTTP \(response.status.code); check the box source or try again later.")
            }
            let body = try await response.body.collect(upTo: Self.checksumLimit)
            text = String(buffer: body)
        } catch let error as BoxstackError {
            throw error
        } catch {
            throw BoxstackError(.network, "Cannot fetch \(checksumURL): \(error); check the box source or your network.")
        }
        return PublishedFile(
            role: role, name: name, location: url(of: name),
            digest: try parseChecksumFile(text, fileName: name, source: checksumURL), checksumText: text, size: nil)
    }

    func download(_ file: PublishedFile, into part: PartialDownload, progress: DownloadProgress) async throws {
        try await download(file, into: part, progress: progress, allowRestart: true)
    }

    private func download(_ file: PublishedFile, into part: PartialDownload, progress: DownloadProgress, allowRestart: Bool) async throws {
        var request = HTTPClientRequest(url: file.location)
        let offset = part.resumeOffset
        if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
        var expectedEnd: Int64?
        do {
            let response = try await client.execute(request, deadline: .distantFuture)
            let length = response.headers.first(name: "Content-Length").flatMap { Int64($0) }
            switch response.status.code {
            case 206 where offset > 0 && contentRangeStart(response.headers.first(name: "Content-Range")) == offset:
                expectedEnd = length.map { offset + $0 }
            case 200:
                // A server without range support sends the whole file again.
                try part.restart()
                expectedEnd = length
            case 416 where offset > 0 && allowRestart:
                // The kept part no longer fits the file the server has; start over once.
                try part.restart()
                return try await download(file, into: part, progress: progress, allowRestart: false)
            default:
                throw BoxstackError(
                    .network, "\(file.location) answered HTTP \(response.status.code); the cached box was left unchanged.")
            }
            let bar = progress.bar(total: expectedEnd)
            bar.set(part.size)
            defer { bar.finish() }
            for try await chunk in response.body {
                try part.append(chunk)
                bar.advance(by: Int64(chunk.readableBytes))
            }
        } catch let error as BoxstackError {
            throw error
        } catch is CancellationError {
            throw BoxstackError(.interrupted, "The download of \(file.name) was cancelled; run the command again to resume it.")
        } catch {
            throw interrupted(file, part: part, cause: error)
        }
        if let expectedEnd, part.size != expectedEnd {
            throw interrupted(file, part: part, cause: nil)
        }
    }

    private func interrupted(_ file: PublishedFile, part: PartialDownload, cause: (any Error)?) -> BoxstackError {
        BoxstackError(
            .network,
            "The download of \(file.location) broke off after \(ByteCount.format(part.size)); run the command again to resume it (the cached box was left unchanged).",
            cause: cause)
    }

    private func contentRangeStart(_ header: String?) -> Int64? {
        // "bytes 100-999/1000"
        guard let header, header.hasPrefix("bytes "), let dash = header.firstIndex(of: "-") else { return nil }
        return Int64(header[header.index(header.startIndex, offsetBy: 6)..<dash])
    }
}
