import BoxstackCore
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A byte range of a file as an async sequence of buffers, so uploads stream without loading the file.
///
/// `progress` hears of each buffer as the HTTP client takes it, which it does only as fast as the
/// connection sends: that is the upload progress the transfer watchdog sees.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String
    let range: Range<Int64>
    let progress: (@Sendable (Int64) -> Void)?
    /// Small enough that even a slow uplink hands over several buffers per stall interval.
    static let chunkSize = 64 << 10

    func makeAsyncIterator() -> Iterator { Iterator(path: path, position: range.lowerBound, end: range.upperBound, progress: progress) }

    struct Iterator: AsyncIteratorProtocol {
        let path: String
        var position: Int64
        let end: Int64
        let progress: (@Sendable (Int64) -> Void)?
        var file: OpenFile?

        init(path: String, position: Int64, end: Int64, progress: (@Sendable (Int64) -> Void)?) {
            self.path = path
            self.position = position
            self.end = end
            self.progress = progress
        }

        mutating func next() async throws -> ByteBuffer? {
            guard position < end else { return nil }
            if file == nil { file = try OpenFile(path: path) }
            guard let descriptor = file?.descriptor else { return nil }
            let count = Int(Swift.min(Int64(FileChunks.chunkSize), end - position))
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let offset = position
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                Swift.max(0, pread(descriptor, pointer.baseAddress, count, off_t(offset)))
            }
            guard read > 0 else {
                throw BoxstackError(.invalidData, "\(path) ended at byte \(position) while it was being uploaded.")
            }
            position += Int64(read)
            progress?(Int64(read))
            return buffer
        }
    }

    /// An open file descriptor, closed when the last iterator copy holding it goes away.
    final class OpenFile {
        let descriptor: Int32
        init(path: String) throws {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw BoxstackError(.notFound, "cannot read \(path): \(String(cString: strerror(errno))).")
            }
        }
        deinit { close(descriptor) }
    }
}
