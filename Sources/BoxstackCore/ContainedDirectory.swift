import CLibC
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A directory that path resolution cannot leave: every path below it is resolved by the kernel with
/// `openat2(2)` and `RESOLVE_IN_ROOT`, so `..` and symlinks (absolute or relative) resolve as if the
/// directory were `/`, as a container runtime resolves them in a container's root. Magic links
/// (`/proc/self/fd/N`) are never followed. Nothing written through it can reach outside, whatever
/// the tree holds, the order of operations or the length of paths.
public final class ContainedDirectory: @unchecked Sendable {
    /// Why a path inside could not be opened, with the part of the path that failed.
    public struct PathError: Error, Sendable {
        public var code: Int32
        /// The path (relative to the contained directory) whose resolution failed.
        public var path: String
        public var reason: String { String(cString: strerror(code)) }
    }

    /// The directory's path on the host.
    public let path: String
    /// An `BOXSTACK_O_PATH` descriptor of the directory.
    public let descriptor: Int32
    private static let resolve = BOXSTACK_RESOLVE_IN_ROOT | BOXSTACK_RESOLVE_NO_MAGICLINKS
    /// Longest path handed to one `openat2` call; longer ones are resolved in steps.
    private static let stepLength = 2048

    /// Opens `path`, which must be a directory (a symlink to one is followed here, once, by the caller's choice of root).
    public init(path: String) throws {
        let descriptor = Glibc.open(path, BOXSTACK_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw BoxstackError(.notFound, "cannot use \(path) as a directory: \(String(cString: strerror(errno))).")
        }
        self.path = path
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Opens `relative` (components without `.`, `..` or `/`) inside the directory with `flags`;
    /// `relative` empty opens the directory itself. The caller closes the descriptor.
    public func open(_ components: [Substring], flags: Int32, mode: mode_t = 0) throws(PathError) -> Int32 {
        if components.isEmpty { return try Self.openat2(descriptor, ".", flags: flags, mode: mode, shown: "") }
        let steps = Self.steps(components)
        var base = descriptor
        var done: [Substring] = []
        defer { if base != descriptor { close(base) } }
        for (index, step) in steps.enumerated() {
            let last = index == steps.count - 1
            done += step
            let opened = try Self.openat2(
                base, step.joined(separator: "/"), flags: last ? flags : BOXSTACK_O_PATH | O_DIRECTORY | O_CLOEXEC, mode: mode,
                shown: done.joined(separator: "/"))
            if last { return opened }
            if base != descriptor { close(base) }
            base = opened
        }
        return -1  // unreachable: `steps` is never empty for non-empty components
    }

    /// Opens the directory `components`, creating missing directories with `mode` (owned by the
    /// caller). A component that exists and is not a directory (or a symlink to one) is an `ENOTDIR`
    /// error naming it.
    public func openDirectory(_ components: [Substring], creatingWithMode mode: mode_t?) throws(PathError) -> Int32 {
        let flags = BOXSTACK_O_PATH | O_DIRECTORY | O_CLOEXEC
        do throws(PathError) {
            return try open(components, flags: flags)
        } catch  where error.code == ENOENT && mode != nil {
            // Create the missing tail one directory at a time. Existing components are resolved from the
            // root (symlinks included); below a directory made here, nothing else exists, so the rest is
            // opened right beside it without resolving anything again.
            var parent = try open([], flags: flags)
            var creating = false
            for count in 1...components.count {
                let prefix = Array(components[..<count])
                if !creating, let next = try? open(prefix, flags: flags) {
                    close(parent)
                    parent = next
                    continue
                }
                let name = String(components[count - 1])
                if mkdirat(parent, name, mode ?? 0o755) == 0 {
                    creating = true
                    let next = openat(parent, name, flags | O_NOFOLLOW)
                    let code = errno
                    close(parent)
                    guard next >= 0 else { throw PathError(code: code, path: prefix.joined(separator: "/")) }
                    parent = next
                    continue
                }
                if errno != EEXIST {
                    let code = errno
                    close(parent)
                    throw PathError(code: code, path: prefix.joined(separator: "/"))
                }
                let next: Int32
                do throws(PathError) { next = try open(prefix, flags: flags) } catch {
                    close(parent)
                    // A name that exists but cannot be opened as a directory: a file, or a symlink to nowhere.
                    throw PathError(code: error.code == ENOENT ? ENOTDIR : error.code, path: error.path)
                }
                close(parent)
                parent = next
            }
            return parent
        }
    }

    private static func openat2(_ base: Int32, _ path: String, flags: Int32, mode: mode_t, shown: String) throws(PathError) -> Int32 {
        while true {
            let result = boxstack_openat2(base, path, flags | O_CLOEXEC, UInt32(mode), resolve)
            if result >= 0 { return result }
            if errno == EINTR || errno == EAGAIN { continue }
            throw PathError(code: errno, path: shown)
        }
    }

    /// Splits components into steps whose joined length stays under `stepLength`.
    private static func steps(_ components: [Substring]) -> [[Substring]] {
        var steps: [[Substring]] = [[]]
        var length = 0
        for component in components {
            if length + component.utf8.count + 1 > stepLength, !(steps[steps.count - 1].isEmpty) {
                steps.append([])
                length = 0
            }
            steps[steps.count - 1].append(component)
            length += component.utf8.count + 1
        }
        return steps
    }
}
