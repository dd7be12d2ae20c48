import AsyncHTTPClient
import BoxstackCore
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import OCI

#if canImport(Glibc)
    import Glibc
#endif

extension RegistryClient {
    // MARK: Blobs

    /// True when `repository` has the blob `digest` (HEAD).
    public func blobExists(repository: String, digest: ContentDigest) async throws -> Bool {
        try await blobExists(repository: repository, digest: digest, scope: Self.pullScope(repository))
    }

    private func blobExists(repository: String, digest: ContentDigest, scope: String) async throws -> Bool {
        let response = try await request(
            .HEAD, "/v2/\(repository)/blobs/\(digest)", scope: scope, activity: "checking for the blob \(digest) in \(repository)")
        switch response.status {
        case .ok: return true
        case .notFound: return false
        default: throw failure(response.status, body: Data(), what: "checking the blob \(digest) in \(repository)")
        }
    }

    /// Downloads the blob `digest` of `repository` to `path`.
    ///
    /// The bytes stream into a temporary file beside `path` while being hashed. Only when digest and
    /// size (`size`, when given) match is the file renamed to `path`; otherwise it is removed,
    /// `checksumMismatch` names the digest, and nothing is left at `path`. `progress` receives byte counts
    /// as they arrive. A redirect (e.g. to a storage host) is followed, without credentials when it
    /// leaves the registry's origin.
    public func downloadBlob(
        repository: String, digest: ContentDigest, size: Int64? = nil, to path: String,
        progress: (@Sendable (Int64) -> Void)? = nil
    ) async throws {
        let staged = try AtomicFile.Staged(for: path)
        let temporary = staged.temporaryPath
        let descriptor = open(temporary, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            staged.discard()
            throw BoxstackError(.permission, "cannot open \(temporary): \(reason).")
        }
        var committed = false
        defer {
            close(descriptor)
            if !committed { staged.discard() }
        }
        let activity = "downloading the blob \(digest) of \(repository)"
        let (received, actual) = try await send(
            .GET, "/v2/\(repository)/blobs/\(digest)", scope: Self.pullScope(repository), blob: true, activity: activity
        ) { response, transfer in
            guard response.status == .ok else {
                let body = try await self.collect(response, limit: 1 << 20, transfer: transfer, activity: activity)
                throw self.failure(response.status, body: body, what: "the blob \(digest) of \(repository)")
            }
            var hasher = SHA256()
            var received: Int64 = 0
            do {
                for try await buffer in response.body {
                    transfer.record(bytes: buffer.readableBytes)
                    received += Int64(buffer.readableBytes)
                    if let size, received > size {
                        throw BoxstackError(
                            .checksumMismatch,
                            "the blob \(digest) from \(self.registry)/\(repository) is larger than its \(size) bytes; it is corrupt and was not stored."
                        )
                    }
                    try buffer.withUnsafeReadableBytes { bytes in
                        hasher.update(bufferPointer: bytes)
                        try FileDescriptor.writeAll(bytes, to: descriptor, path: temporary)
                    }
                    progress?(Int64(buffer.readableBytes))
                }
            } catch let error as BoxstackError {
                throw error
            } catch {
                throw BoxstackError(
                    .network, "the download of blob \(digest) from \(self.registry)/\(repository) broke off after \(received) bytes.",
                    cause: error)
            }
            return (received, ContentDigest(sha256Hex: hasher.finalize().hexString))
        }
        state.withValue { $0.statistics.bytesDownloaded += received }
        guard actual == digest else {
            throw BoxstackError(
                .checksumMismatch,
                "the blob \(digest) from \(registry)/\(repository) is corrupt: its \(received) bytes have digest \(actual); nothing was stored.")
        }
        if let size, received != size {
            throw BoxstackError(
                .checksumMismatch,
                "the blob \(digest) from \(registry)/\(repository) has \(received) bytes instead of \(size); nothing was stored.")
        }
        try staged.commit()
        committed = true
    }

    /// Puts the blob in the file at `path` (of `size` bytes with `digest`) into `repository`.
    ///
    /// Nothing is sent when the repository already has it. With `mountFrom`, a repository of the same
    /// registry that has the blob, the registry is asked to link it from there. Otherwise blobs up to
    /// `uploadChunkSize` go up in one PUT, larger ones in PATCH chunks. The registry checks the digest.
    ///
    /// The registry may hand out an upload session on another host (a storage service, often with a
    /// pre-signed URL). Like docker and containerd, the client sends that session its PATCH and PUT
    /// requests without the registry's credentials: they belong to the registry alone, and such URLs
    /// carry their own authorization.
    @discardableResult
    public func uploadBlob(
        repository: String, digest: ContentDigest, size: Int64, from path: String, mountFrom: String? = nil,
        progress: (@Sendable (Int64) -> Void)? = nil
    ) async throws -> BlobUploadResult {
        var scope = Self.pushScope(repository)
        if let mountFrom, mountFrom != repository { scope += " " + Self.pullScope(mountFrom) }
        if try await blobExists(repository: repository, digest: digest, scope: scope) {
            state.withValue { $0.statistics.blobsSkipped += 1 }
            progress?(size)
            return .alreadyPresent
        }
        var start = "/v2/\(repository)/blobs/uploads/"
        if let mountFrom, mountFrom != repository {
            start += "?mount=\(Self.queryEscaped(digest.description))&from=\(Self.queryEscaped(mountFrom))"
        }
        let activity = "uploading the blob \(digest) to \(repository)"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        let started = try await request(
            .POST, start, scope: scope, headers: headers, activity: "starting the upload of blob \(digest) to \(repository)")
        if started.status == .created {
            state.withValue { $0.statistics.blobsMounted += 1 }
            progress?(size)
            return .mounted
        }
        guard started.status == .accepted else {
            throw failure(started.status, body: started.body, what: "starting the upload of blob \(digest) to \(repository)")
        }
        var location = try await uploadLocation(started.headers, relativeTo: try await baseURL() + start, activity: activity)
        do {
            if size <= uploadChunkSize {
                location = try await finishUpload(
                    location: location, digest: digest, scope: scope, path: path, range: 0..<size, activity: activity,
                    progress: progress)
            } else {
                var offset: Int64 = 0
                while offset < size {
                    let end = min(offset + uploadChunkSize, size)
                    var chunkHeaders = HTTPHeaders()
                    chunkHeaders.add(name: "Content-Type", value: "application/octet-stream")
                    chunkHeaders.add(name: "Content-Length", value: String(end - offset))
                    chunkHeaders.add(name: "Content-Range", value: "\(offset)-\(end - 1)")
                    let range = offset..<end
                    let response = try await request(
                        .PATCH, location, scope: scope, headers: chunkHeaders, blob: true, activity: activity,
                        body: { transfer in Self.fileBody(path: path, range: range, transfer: transfer, progress: progress) })
                    guard response.status == .accepted else {
                        throw failure(response.status, body: response.body, what: "uploading a chunk of blob \(digest) to \(repository)")
                    }
                    location = try await uploadLocation(response.headers, relativeTo: location, activity: activity)
                    state.withValue { $0.statistics.bytesUploaded += Int64(range.count) }
                    offset = end
                }
                location = try await finishUpload(
                    location: location, digest: digest, scope: scope, path: path, range: size..<size, activity: activity,
                    progress: nil)
            }
        } catch {
            // Abandon the upload session so the registry does not keep the partial data around.
            _ = try? await request(.DELETE, location, scope: scope, activity: "cancelling the upload of blob \(digest)")
            throw error
        }
        state.withValue { $0.statistics.blobsUploaded += 1 }
        return .uploaded
    }

    /// The closing PUT of an upload session, carrying the bytes of `range` (empty after chunks).
    private func finishUpload(
        location: String, digest: ContentDigest, scope: String, path: String, range: Range<Int64>, activity: String,
        progress: (@Sendable (Int64) -> Void)?
    ) async throws -> String {
        let url = location + (location.contains("?") ? "&" : "?") + "digest=" + Self.queryEscaped(digest.description)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/octet-stream")
        headers.add(name: "Content-Length", value: String(range.count))
        let response = try await request(
            .PUT, url, scope: scope, headers: headers, blob: true, activity: activity,
            body: { transfer in
                range.isEmpty ? .bytes(ByteBuffer()) : Self.fileBody(path: path, range: range, transfer: transfer, progress: progress)
            })
        guard response.status == .created else {
            throw failure(response.status, body: response.body, what: "completing the upload of blob \(digest)")
        }
        state.withValue { $0.statistics.bytesUploaded += Int64(range.count) }
        return location
    }

    /// `range` of the file at `path` as a streamed request body, reported to `transfer` and `progress`.
    private static func fileBody(
        path: String, range: Range<Int64>, transfer: TransferProgress, progress: (@Sendable (Int64) -> Void)?
    ) -> HTTPClientRequest.Body {
        let chunks = FileChunks(path: path, range: range) { count in
            transfer.record(bytes: Int(count))
            progress?(count)
        }
        return .stream(chunks, length: .known(Int64(range.count)))
    }

    /// The upload session's URL from a `Location` header (absolute, or relative to `current`), once
    /// the URL policy allows it.
    private func uploadLocation(_ headers: HTTPHeaders, relativeTo current: String, activity: String) async throws -> String {
        guard let location = headers.first(name: "Location") else {
            throw BoxstackError(.invalidData, "the registry \(registry) started an upload without a Location header.")
        }
        return try urlPolicy(base: try await baseURL()).followedURL(location, relativeTo: current, activity: activity)
    }
}
