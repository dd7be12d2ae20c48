import BoxstackCore
import Foundation

/// Where a boxed command's output goes: the terminal, live, and `boxstack.log` in the target directory.
public final class BuildLog: @unchecked Sendable {
    private let lock = NSLock()
    private let file: FileHandle?
    private let echo: Bool

    /// Appends to `path` (created 0644) and, with `echo`, copies everything to stdout/stderr.
    public init(path: String?, echo: Bool = true) throws {
        self.echo = echo
        if let path {
            if !FileManager.default.fileExists(atPath: path) {
                // A file that cannot be created cannot be opened either: the guard below reports it.
                _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644])
            }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw BoxstackError(.permission, "cannot write the log \(path).")
            }
            handle.seekToEndOfFile()
            file = handle
        } else {
            file = nil
        }
    }

    deinit { try? file?.close() }

    /// A line of boxstack's own ("==> booting …"), to stderr and the log.
    public func note(_ line: String) {
        write(Data("boxstack: \(line)\n".utf8), toError: true)
    }

    public func standardOutput(_ data: Data) { write(data, toError: false) }
    public func standardError(_ data: Data) { write(data, toError: true) }

    private func write(_ data: Data, toError: Bool) {
        lock.withLock {
            if echo { (toError ? FileHandle.standardError : FileHandle.standardOutput).write(data) }
            file?.write(data)
        }
    }
}
