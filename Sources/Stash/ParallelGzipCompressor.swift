import BoxstackCore
import CLibDeflate
import Foundation

/// gzip on every core with libdeflate: the stream is cut into blocks, each block becomes a gzip
/// member of its own on a pool thread, and the members reach `sink` in order on the caller's thread.
///
/// Members one after another are one gzip file (RFC 1952, 2.2): gzip, zlib, Go's compress/gzip
/// (skopeo, umoci, Docker, containerd) and libarchive read them as one stream. Independent blocks need
/// no shared dictionary, so the cores never wait for each other; at 4 MiB a block the size grows by
/// far less than 1 %. libdeflate writes no name and a zero time, so equal input gives equal blobs.
final class ParallelGzipCompressor {
    /// Uncompressed bytes per gzip member.
    static let blockSize = 4 << 20
    /// libdeflate's fastest level: its layers are about as small as umoci's, at less than half its time
    /// (Scripts/bench/stash; the README's Benchmarks section has the figures).
    static let level: Int32 = 1

    private final class Block: @unchecked Sendable {
        let input: [UInt8]
        var output: [UInt8] = []
        let done = DispatchSemaphore(value: 0)
        init(_ input: [UInt8]) { self.input = input }
    }

    /// One libdeflate compressor per running block: allocating one costs more than a small block.
    private final class CompressorPool: @unchecked Sendable {
        private let lock = NSLock()
        private var idle: [OpaquePointer] = []

        func take() -> OpaquePointer? {
            lock.withLock { idle.popLast() } ?? libdeflate_alloc_compressor(ParallelGzipCompressor.level)
        }
        func give(_ compressor: OpaquePointer) { lock.withLock { idle.append(compressor) } }
        deinit { for compressor in idle { libdeflate_free_compressor(compressor) } }
    }

    private let sink: (UnsafeRawBufferPointer) -> Int32
    private let pool = CompressorPool()
    private let queue = DispatchQueue(label: "boxstack.gzip", qos: .userInitiated, attributes: .concurrent)
    /// Blocks handed to the pool and not yet written, oldest first.
    private var inFlight: [Block] = []
    private let maxInFlight = 2 * max(1, ProcessInfo.processInfo.activeProcessorCount)
    private var filling: [UInt8] = []
    private var failure: Int32 = 0

    /// `sink` gets each finished member, in order, and returns 0 or an errno.
    init(sink: @escaping (UnsafeRawBufferPointer) -> Int32) {
        self.sink = sink
        filling.reserveCapacity(Self.blockSize)
    }

    deinit {
        // A writer that failed half-way still waits for its blocks: the pool outlives none of them.
        for block in inFlight { block.done.wait() }
    }

    /// Takes `bytes` into the stream; returns 0 or the errno of an earlier failed write.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        var rest = bytes[...]
        while !rest.isEmpty, failure == 0 {
            let count = min(rest.count, Self.blockSize - filling.count)
            filling.append(contentsOf: rest.prefix(count))
            rest = rest.dropFirst(count)
            if filling.count == Self.blockSize { submitFilling() }
        }
        return failure
    }

    /// Compresses what is left and writes every member; throws when a block or a write failed.
    func finish() throws {
        if !filling.isEmpty { submitFilling() }
        while !inFlight.isEmpty { writeOldest() }
        if failure == ENOMEM {
            throw BoxstackError(.internalError, "libdeflate could not compress the layer (out of memory).")
        }
        if failure != 0 {
            throw BoxstackError(.permission, "cannot write the compressed layer: \(String(cString: strerror(failure))).")
        }
    }

    private func submitFilling() {
        let block = Block(filling)
        filling.removeAll(keepingCapacity: true)
        let pool = pool
        queue.async {
            defer { block.done.signal() }
            guard let compressor = pool.take() else { return }
            defer { pool.give(compressor) }
            var output = [UInt8](repeating: 0, count: libdeflate_gzip_compress_bound(compressor, block.input.count))
            let written = block.input.withUnsafeBytes { input in
                output.withUnsafeMutableBytes { out in
                    libdeflate_gzip_compress(compressor, input.baseAddress, input.count, out.baseAddress, out.count)
                }
            }
            output.removeLast(output.count - written)
            block.output = output
        }
        inFlight.append(block)
        while inFlight.count > maxInFlight { writeOldest() }
    }

    private func writeOldest() {
        let block = inFlight.removeFirst()
        block.done.wait()
        guard failure == 0 else { return }
        // An empty member for input that was not empty means libdeflate could not allocate.
        guard !block.output.isEmpty else {
            failure = ENOMEM
            return
        }
        failure = block.output.withUnsafeBytes { sink($0) }
    }
}
