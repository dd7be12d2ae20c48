import AsyncHTTPClient
import BoxstackCore
import Foundation
import NIOCore
import NIOHTTP1

/// Receives a box file's body on the HTTP client's event loop and hands each part straight to the
/// `PartialDownload` (which hashes and writes it on its own thread). Streaming the body through an
/// async sequence instead handed every part from the event loop to a task and back, which halved
/// the throughput over loopback.
final class PartDownloadDelegate: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = (status: UInt, contentLength: Int64?, contentRangeStart: Int64?)

    private let part: PartialDownload
    private let progress: DownloadProgress
    private let offset: Int64
    private var head: HTTPResponseHead?
    private var bar: ProgressBar?
    /// Whether the body belongs to the part: a 206 that continues it, or a 200 that starts it over.
    private var accepting = false
    private var failure: (any Error)?

    init(part: PartialDownload, offset: Int64, progress: DownloadProgress) {
        self.part = part
        self.offset = offset
        self.progress = progress
    }

    func didReceiveHead(task: HTTPClient.Task<Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.head = head
        let length = head.headers.first(name: "Content-Length").flatMap { Int64($0) }
        switch head.status.code {
        case 206 where offset > 0 && Self.rangeStart(head.headers.first(name: "Content-Range")) == offset:
            accepting = true
            bar = progress.bar(total: length.map { offset + $0 })
            bar?.set(offset)
        case 200:
            // A server without range support sends the whole file again.
            do {
                try part.restart()
                accepting = true
                bar = progress.bar(total: length)
            } catch {
                failure = error
            }
        default:
            accepting = false
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Response>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        guard accepting, failure == nil else { return task.eventLoop.makeSucceededVoidFuture() }
        do {
            try part.append(buffer)
            bar?.advance(by: Int64(buffer.readableBytes))
        } catch {
            failure = error
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<Response>) throws -> Response {
        bar?.finish()
        if let failure { throw failure }
        let headers = head?.headers ?? [:]
        return (
            head?.status.code ?? 0, headers.first(name: "Content-Length").flatMap { Int64($0) },
            Self.rangeStart(headers.first(name: "Content-Range"))
        )
    }

    func didReceiveError(task: HTTPClient.Task<Response>, _ error: any Error) {
        bar?.finish()
    }

    /// The first byte of a `Content-Range: bytes 100-999/1000` answer.
    static func rangeStart(_ header: String?) -> Int64? {
        guard let header, header.hasPrefix("bytes "), let dash = header.firstIndex(of: "-") else { return nil }
        return Int64(header[header.index(header.startIndex, offsetBy: 6)..<dash])
    }
}
