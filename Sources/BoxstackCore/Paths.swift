import Foundation

/// Where boxstack keeps its files, following the XDG base directories and boxstack's own overrides.
public struct Paths: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    private var home: String { environment["HOME"] ?? NSHomeDirectory() }

    private func xdg(_ variable: String, default relative: String) -> String {
        if let value = environment[variable], value.hasPrefix("/") { return value }
        return home + "/" + relative
    }

    /// The box cache: `BOXSTACK_CACHE_DIR`, else `$XDG_CACHE_HOME/boxstack`.
    public var cacheDirectory: String {
        environment["BOXSTACK_CACHE_DIR"] ?? xdg("XDG_CACHE_HOME", default: ".cache") + "/boxstack"
    }

    /// The stash store: `BOXSTACK_STASH_DIR`, else `$XDG_DATA_HOME/boxstack/stashes`.
    public var stashDirectory: String {
        environment["BOXSTACK_STASH_DIR"] ?? xdg("XDG_DATA_HOME", default: ".local/share") + "/boxstack/stashes"
    }

    /// Where `boxes build` publishes the boxes it built: `$XDG_DATA_HOME/boxstack/boxes`.
    public var builtBoxesDirectory: String {
        xdg("XDG_DATA_HOME", default: ".local/share") + "/boxstack/boxes"
    }

    /// Private run directories: `BOXSTACK_RUNS_DIR`, else under `$XDG_RUNTIME_DIR` when set, else under the cache.
    public var runsDirectory: String {
        if let runs = environment["BOXSTACK_RUNS_DIR"], runs.hasPrefix("/") { return runs }
        if let runtime = runtimeDirectory { return runtime + "/boxstack/runs" }
        return cacheDirectory + "/runs"
    }

    /// `$XDG_RUNTIME_DIR` when it is set to an absolute path.
    private var runtimeDirectory: String? {
        environment["XDG_RUNTIME_DIR"].flatMap { $0.hasPrefix("/") ? $0 : nil }
    }

    /// Where cold boots take turns: one place for every cache and run directory of the user, since the
    /// cores they share are the host's. `$XDG_RUNTIME_DIR/boxstack/boot-turns` when set, else
    /// `$XDG_CACHE_HOME/boxstack/boot-turns` (not moved by `BOXSTACK_CACHE_DIR`).
    public var bootTurnsDirectory: String {
        if let runtime = runtimeDirectory { return runtime + "/boxstack/boot-turns" }
        return xdg("XDG_CACHE_HOME", default: ".cache") + "/boxstack/boot-turns"
    }

    /// The user's extra catalog, `BOXSTACK_CATALOG`.
    public var userCatalog: String? { environment["BOXSTACK_CATALOG"] }

    /// A file that ships with boxstack (`Boxes/catalog.yaml`, `Schemas/derived.rng`), found by walking up
    /// from the real path of the running executable: `relative` in a checkout, or `share/boxstack/relative`
    /// in an installation (Scripts/setup); nil when there is neither.
    public static func shippedFile(_ relative: String) -> String? {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        while true {
            for candidate in [relative, "share/boxstack/" + relative] {
                let path = directory.appendingPathComponent(candidate).path
                if FileManager.default.fileExists(atPath: path) { return path }
            }
            guard directory.path != "/" else { return nil }
            directory.deleteLastPathComponent()
        }
    }
}

extension FileManager {
    /// Creates `path` and its parents with `mode` (only new directories get the mode).
    public func makeDirectory(_ path: String, mode: Int = 0o755) throws {
        try createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
    }
}
