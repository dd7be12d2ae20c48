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

    deinit {
        // Trees written by tests may hold read-only directories; make them removable first.
        _ = try? Subprocess.run(["chmod", "-R", "u+rwX", path])
        try? FileManager.default.removeItem(atPath: path)
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
