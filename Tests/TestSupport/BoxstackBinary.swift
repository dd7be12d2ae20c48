import BoxstackCore
import Foundation

/// The `boxstack` executable built by `swift build`, run as a user runs it.
public enum BoxstackBinary {
    /// `BOXSTACK_TEST_BINARY`, else the debug build of this checkout.
    public static var path: String {
        ProcessInfo.processInfo.environment["BOXSTACK_TEST_BINARY"] ?? repositoryRoot + "/.build/debug/boxstack"
    }

    /// The executable's path, or an error telling how to build it.
    public static func checked() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BoxstackError(.notFound, "\(path) is missing; run 'swift build' before these tests.")
        }
        return path
    }

    /// Runs `boxstack ARGUMENTS` with `environment` added to this process's environment.
    public static func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil) throws -> ProcessResult {
        try Subprocess.run(
            [try checked()] + arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, input: input)
    }
}
