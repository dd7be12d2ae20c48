import BoxstackCore
import Foundation

/// The checkout's top directory, found from this file's path.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A fresh directory under the system temporary directory, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "boxstack-test") throws {
        path = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ relative: String) -> String { path + "/" + relative }

    deinit { Self.remove(path) }

    /// Removes a tree a test wrote; it may hold read-only directories, so they are made removable first.
    public static func remove(_ path: String) {
        _ = try? Subprocess.run(["chmod", "-R", "u+rwX", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Removes what earlier test runs left of directories made with `label` (a value that lives as long
    /// as the test process is never released, so its directory outlives the run).
    public static func removeLeftovers(of label: String) {
        let temporary = NSTemporaryDirectory()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasPrefix(label + "-") {
            remove((temporary as NSString).appendingPathComponent(name))
        }
    }
}

/// Picks a free TCP port on 127.0.0.1 (bind to port 0, read it back, close).
public func freeLoopbackPort() throws -> Int {
    let result = try Subprocess.run([
        "python3", "-c",
        "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])",
    ]).check()
    guard let port = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BoxstackError(.internalError, "no free port")
    }
    return port
}
