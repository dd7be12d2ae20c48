import Foundation

/// How a child process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case terminated(code: Int32)
    case signalled(signal: Int32)

    public var isSuccess: Bool { self == .terminated(code: 0) }

    public var description: String {
        switch self {
        case .terminated(let code): return "exit code \(code)"
        case .signalled(let signal): return "signal \(signal)"
        }
    }
}

/// The result of a finished child process with its collected output.
public struct ProcessResult: Sendable {
    public var arguments: [String]
    public var status: ExitStatus
    public var standardOutput: Data
    public var standardError: Data

    public var output: String { String(decoding: standardOutput, as: UTF8.self) }
    public var errorOutput: String { String(decoding: standardError, as: UTF8.self) }

    /// Throws `processFailed` naming the command and its last error lines unless it succeeded.
    @discardableResult
    public func check() throws -> ProcessResult {
        guard status.isSuccess else {
            let tail = errorOutput.split(separator: "\n").suffix(5).joined(separator: "\n")
            throw BoxstackError(
                .processFailed, "\(arguments.joined(separator: " ")) failed with \(status).", details: tail)
        }
        return self
    }
}

/// Runs programs by argv (never through a shell).
public enum Subprocess {
    /// Finds `name` on `PATH` (or returns it when it already holds a slash).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `arguments` to completion and collects its output.
    public static func run(
        _ arguments: [String], environment: [String: String]? = nil, input: Data? = nil,
        currentDirectory: String? = nil
    ) throws -> ProcessResult {
        guard let executable = which(arguments[0]) else {
            throw BoxstackError(.notFound, "\(arguments[0]) is not installed or not on PATH; run Scripts/setup.")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(arguments.dropFirst())
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let stdout = Pipe()
        let stderr = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        if let input {
            try stdin.fileHandleForWriting.write(contentsOf: input)
            try stdin.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        let errorData = LockedBox(Data())
        let errorReader = stderr.fileHandleForReading
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errorData.value = errorReader.readDataToEndOfFile()
            done.signal()
        }
        let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        process.waitUntilExit()
        let status: ExitStatus =
            process.terminationReason == .uncaughtSignal
            ? .signalled(signal: process.terminationStatus) : .terminated(code: process.terminationStatus)
        return ProcessResult(
            arguments: arguments, status: status, standardOutput: outputData, standardError: errorData.value)
    }
}

/// A value guarded by a lock, for handing results across threads.
public final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    public init(_ value: Value) { stored = value }
    public var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    public func withValue<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        try lock.withLock { try body(&stored) }
    }
}
