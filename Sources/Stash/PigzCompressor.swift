import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// pigz as a child with only its three standard streams: the tar goes to its input, and a thread of
/// our own hands what it writes to `sink`. (libarchive's program filter gives its child every
/// descriptor the process holds, so two layers compressed at once kept each other's pipes open and
/// neither pigz ever saw the end of its input.)
final class PigzCompressor {
    private let child: ChildProcess
    private let input: Int32
    private let done = DispatchSemaphore(value: 0)
    private let failure = LockedBox<Int32>(0)

    /// Starts `pigz`; `sink` gets each piece of the gzip stream and returns 0 or an errno.
    init(pigz: String, sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Int32) throws {
        // A pigz that dies must not kill us with SIGPIPE; the write then fails with EPIPE instead.
        signal(SIGPIPE, SIG_IGN)
        let toPigz = try PipeEnds()
        let fromPigz = try PipeEnds()
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        do {
            child = try ChildProcess(
                [pigz, "-6", "-n", "-c"], standardInput: toPigz.read, standardOutput: fromPigz.write, standardError: null)
        } catch {
            toPigz.closeBoth()
            fromPigz.closeBoth()
            throw error
        }
        close(toPigz.read)
        close(fromPigz.write)
        input = toPigz.write
        let output = fromPigz.read
        let failure = failure
        let done = done
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                let code = buffer.withUnsafeBytes { sink(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                if code != 0, failure.value == 0 { failure.value = code }
            }
            close(output)
            done.signal()
        }
    }

    /// Feeds `bytes` to pigz; returns 0 or an errno.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        FileDescriptor.writeAll(bytes, to: input)
    }

    /// Ends pigz's input, waits for the rest of its output and for pigz itself.
    func finish() throws {
        close(input)
        done.wait()
        let status = child.wait()
        if failure.value != 0 {
            throw BoxstackError(.permission, "cannot write the compressed layer: \(String(cString: strerror(failure.value))).")
        }
        guard status.isSuccess else { throw BoxstackError(.processFailed, "pigz failed compressing the layer (\(status)).") }
    }
}
