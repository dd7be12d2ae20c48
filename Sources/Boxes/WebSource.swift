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
        let offset = part.resumeOffset
        let response: PartDownloadDelegate.Response
        do {
            var request = try HTTPClient.Request(url: file.location)
            if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
            let delegate = PartDownloadDelegate(part: part, offset: offset, progress: progress)
            let task = client.execute(request: request, delegate: delegate, deadline: nil)
            response = try await withTaskCancellationHandler {
                try await task.futureResult.get()
            } onCancel: {
                task.cancel()
            }
        } catch let error as BoxstackError {
            throw error
        } catch is CancellationError {
            throw BoxstackError(.interrupted, "The download of \(file.name) was cancelled; run the command again to resume it.")
        } catch {
            throw interrupted(file, part: part, cause: error)
        }
        let expectedEnd: Int64?
        switch response.status {
        case 206 where offset > 0 && response.contentRangeStart == offset:
            expectedEnd = response.contentLength.map { offset + $0 }
        case 200:
            expectedEnd = response.contentLength
        case 416 where offset > 0 && allowRestart:
            // The kept part no longer fits the file the server has; start over once.
            try part.restart()
            return try await download(file, into: part, progress: progress, allowRestart: false)
        default:
            throw BoxstackError(
                .network, "\(file.location) answered HTTP \(response.status); the cached box was left unchanged.")
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

}
