import Boxes
import BoxstackCore
import Foundation
import TestSupport

/// A published box (kernel, initrd, disk with `.sha256` files) under a served directory, a catalog that
/// points at it, and an empty cache, all in a fresh temporary directory.
final class BoxFixture: @unchecked Sendable {
    let temporary: TemporaryDirectory
    /// The directory the HTTP server serves; the box's files live in `served/box/`.
    let served: String
    let server: HTTPFixture
    let cache: BoxCache

    static let kernel = "test-box.x86_64.kernel"
    static let initrd = "test-box.x86_64.initrd"
    static let disk = "test-box.x86_64.qcow2"

    init(diskSize: Int = 4 << 20) throws {
        temporary = try TemporaryDirectory("boxes")
        served = URL(fileURLWithPath: temporary.file("served")).standardizedFileURL.path
        try FileManager.default.makeDirectory(served + "/box")
        server = try HTTPFixture(root: served)
        cache = BoxCache(directory: temporary.file("cache"))
        try publish(Self.kernel, randomBytes(64 << 10))
        try publish(Self.initrd, randomBytes(128 << 10))
        try publish(Self.disk, randomBytes(diskSize))
    }

    /// Writes `bytes` as `name` with its `name.sha256` in sha256sum format.
    func publish(_ name: String, _ bytes: Data) throws {
        try bytes.write(to: URL(fileURLWithPath: "\(served)/box/\(name)"))
        let line = "\(ContentDigest.of(bytes).hex)  \(name)\n"
        try Data(line.utf8).write(to: URL(fileURLWithPath: "\(served)/box/\(name).sha256"))
    }

    func published(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: "\(served)/box/\(name)"))
    }

    /// A catalog entry `test` whose x86_64 source is `source` (the served box over HTTP by default).
    func box(source: String? = nil) throws -> BoxDefinition {
        let path = temporary.file("catalog.yaml")
        let yaml = """
            boxes:
              - name: test
                description: test box
                memory: 1G
                cpus: 1
                console: ttyS0
                arch:
                  x86_64:
                    source: \(source ?? server.url("box/"))
                    kernel: \(Self.kernel)
                    initrd: \(Self.initrd)
                    disk: \(Self.disk)
                    cmdline: [root=/dev/vda, rw]
            """
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        return try BoxCatalog.parse(file: path)[0]
    }

    /// Paths of box files the server sent a body for (checksum files left out), in request order.
    func boxFilesServed() throws -> [String] {
        try server.requests().filter { $0.method == "GET" && !$0.path.hasSuffix(".sha256") }.map {
            ($0.path as NSString).lastPathComponent
        }
    }
}

func randomBytes(_ count: Int) -> Data {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: count)
    data.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for index in words.indices { words[index] = generator.next() }
    }
    return data
}

func contents(_ path: String) throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: path))
}
