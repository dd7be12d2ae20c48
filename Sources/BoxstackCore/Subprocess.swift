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

    /// Runs `arguments` to completion and collects its output; `input` is its standard input (else
    /// /dev/null).
    public static func run(
        _ arguments: [String], environment: [String: String]? = nil, input: Data? = nil,
        currentDirectory: String? = nil
    ) throws -> ProcessResult {
        let output = try PipeEnds()
        let errors = try PipeEnds()
        let inputPipe = try input.map { _ in try PipeEnds() }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let child: ChildProcess
        do {
            child = try ChildProcess(
                arguments, environment: environment, currentDirectory: currentDirectory,
                standardInput: inputPipe?.read ?? null, standardOutput: output.write, standardError: errors.write)
        } catch {
            for pipe in [output, errors] + (inputPipe.map { [$0] } ?? []) { pipe.closeBoth() }
            throw error
        }
        close(output.write)
        close(errors.write)
        if let inputPipe, let input {
            close(inputPipe.read)
            let writer = FileHandle(fileDescriptor: inputPipe.write, closeOnDealloc: true)
            // Fed from its own thread: a child that answers before reading everything must not block us.
            Thread.detachNewThread {
                try? writer.write(contentsOf: input)
                try? writer.close()
            }
        }
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        let errorData = LockedBox(Data())
        let errorReader = FileHandle(fileDescriptor: errors.read, closeOnDealloc: true)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errorData.value = errorReader.readDataToEndOfFile()
            done.signal()
        }
        let outputData = FileHandle(fileDescriptor: output.read, closeOnDealloc: true).readDataToEndOfFile()
        done.wait()
        return ProcessResult(
            arguments: arguments, status: child.wait(), standardOutput: outputData, standardError: errorData.value)
    }
}

/// Both ends of a pipe, close-on-exec (a child gets an end only through its standard streams).
public struct PipeEnds: Sendable {
    public let read: Int32
    public let write: Int32

    public init() throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw BoxstackError(.internalError, "cannot create a pipe: \(String(cString: strerror(errno))).")
        }
        // (pipe2 is not imported; ChildProcess closes stray descriptors in the child anyway.)
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        read = ends[0]
        write = ends[1]
    }

    public func closeBoth() {
        close(read)
        close(write)
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
