import BoxstackCore
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Containment through the CLI, the way a user meets it: a full file system during `stash unpack`,
/// hostile layers unpacked as root (in a user namespace, so an ordinary user's test run covers root
/// too), killed and interrupted stashes, and names at the edges of the grammar.
@Suite struct ContainmentCommandTests {
    private let directory: TemporaryDirectory
    private var store: String { directory.file("store") }

    init() throws {
        directory = try TemporaryDirectory("containment")
    }

    private func boxstack(_ arguments: [String]) throws -> ProcessResult {
        try BoxstackBinary.run(arguments, environment: ["BOXSTACK_STASH_DIR": store])
    }

    /// Runs `script` as root of a new user and mount namespace (`$BOXSTACK` is the binary).
    private func asNamespaceRoot(_ script: String, _ arguments: [String] = []) throws -> ProcessResult {
        try Subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"] + arguments,
            environment: ProcessInfo.processInfo.environment.merging(["BOXSTACK_STASH_DIR": store, "BOXSTACK": try BoxstackBinary.checked()]) { $1 })
    }

    // MARK: Full disks

    @Test(arguments: ["random", "zeros"])
    func aFullFileSystemStopsTheUnpackNamingTheEntry(content: String) throws {
        let tree = directory.file("tree")
        let source = content == "random" ? "/dev/urandom" : "/dev/zero"
        // Zeros make a layer of a few kilobytes that unpacks to 16 MiB: a small decompression bomb.
        try TreeFixture.shell("mkdir -p data && head -c 16M \(source) > data/big && echo small > data/a", in: tree)
        try boxstack(["stash", "--root", tree, "--container-name", "big"]).check()
        let mount = directory.file("small")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let result = try asNamespaceRoot(
            #"mount -t tmpfs -o size=4m tmpfs "$1" && "$BOXSTACK" stash unpack big --root "$1/root""#, [mount])
        #expect(!result.status.isSuccess)
        #expect(result.errorOutput.contains("No space left on device"), "\(result.errorOutput)")
        #expect(result.errorOutput.contains("data/big"), "\(result.errorOutput)")
    }

    // MARK: Hostile layers as root

    @Test func hostileLayersAsRootChangeNothingOutside() throws {
        let outside = directory.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "original".write(toFile: outside + "/victim", atomically: false, encoding: .utf8)
        let deep = Array(repeating: "d", count: 2200).joined(separator: "/")
        let cases: [String: [[RawTar.Member]]] = [
            "missing": [[.init("a", .symlink, link: outside, uid: 0, gid: 0), .init("a/new/evil", content: "x", uid: 0, gid: 0)]],
            "whiteout": [
                [.init("a", .symlink, link: outside, uid: 0, gid: 0), .init("b", .symlink, link: "../outside", uid: 0, gid: 0)],
                [.init("a/.wh.victim", uid: 0, gid: 0), .init("b/.wh.victim", uid: 0, gid: 0), .init("a/.wh..wh..opq", uid: 0, gid: 0)],
            ],
            "climb": [
                [
                    .init("c", .symlink, link: String(repeating: "../", count: 30), uid: 0, gid: 0),
                    .init("c" + outside + "/victim", content: "in", uid: 0, gid: 0),
                ]
            ],
            "deep": [
                [
                    .init(deep + "/x", .symlink, link: outside, uid: 0, gid: 0), .init(deep + "/x/victim", content: "x", uid: 0, gid: 0),
                    .init(deep + "/y", .symlink, link: String(repeating: "../", count: 3000), uid: 0, gid: 0),
                    .init(deep + "/y" + outside + "/victim", content: "in", uid: 0, gid: 0),
                ]
            ],
            "final": [[.init("f", .symlink, link: outside + "/victim", uid: 0, gid: 0)], [.init("f", content: "mine", uid: 0, gid: 0)]],
            "names": [[.init(".wh..", uid: 0, gid: 0)]],
        ]
        for (name, layers) in cases.sorted(by: { $0.key < $1.key }) {
            try RawImage.store(layers, at: store + "/" + name, scratch: directory.path)
            let root = directory.file("root-\(name)")
            let result = try asNamespaceRoot(#""$BOXSTACK" stash unpack "$1" --root "$2""#, [name, root])
            #expect(try String(contentsOfFile: outside + "/victim", encoding: .utf8) == "original", "\(name): \(result.errorOutput)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["victim"], "\(name)")
            if name == "names" { #expect(result.errorOutput.contains("\".wh..\""), "\(result.errorOutput)") }
            if name == "climb" || name == "final" { #expect(result.status.isSuccess, "\(name): \(result.errorOutput)") }
        }
    }

    // MARK: Leftovers

    private func temporaries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: store)) ?? []).filter { $0.hasPrefix(".tmp-") }
    }

    /// Starts a slow first stash and waits until its temporary layout exists.
    private func startSlowStash() throws -> ChildProcess {
        let tree = directory.file("slow")
        try TreeFixture.shell("mkdir -p data && head -c 400M /dev/urandom > data/big", in: tree)
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let child = try ChildProcess(
            [try BoxstackBinary.checked(), "stash", "--root", tree, "--container-name", "slow", "--compression", "gzip"],
            environment: ProcessInfo.processInfo.environment.merging(["BOXSTACK_STASH_DIR": store]) { $1 },
            standardInput: null, standardOutput: null, standardError: null)
        while temporaries().isEmpty, child.status == nil { usleep(10_000) }
        return child
    }

    @Test func anInterruptedFirstStashLeavesNothing() throws {
        let child = try startSlowStash()
        kill(child.pid, SIGINT)
        #expect(child.wait() == .terminated(code: 128 + SIGINT))
        #expect(temporaries().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store + "/slow"))
    }

    @Test func aKilledFirstStashIsSweptByTheNextCommand() throws {
        let child = try startSlowStash()
        kill(child.pid, SIGKILL)
        _ = child.wait()
        #expect(!temporaries().isEmpty)
        try boxstack(["stash", "--list"]).check()
        #expect(temporaries().isEmpty)
    }

    // MARK: Names

    @Test func namesAtTheEdgesOfTheGrammar() throws {
        let tree = directory.file("tree")
        try TreeFixture.shell("echo hi > file", in: tree)
        let longName = String(repeating: "a", count: 120) + "/" + String(repeating: "b", count: 133)
        for name in ["team/base", "team", "blobs", "team/blobs", longName] {
            try boxstack(["stash", "--root", tree, "--container-name", name]).check()
        }
        let listed = try boxstack(["stash", "--list", "--json"]).check().output
        for name in ["team/base", "team", "blobs", "team/blobs", longName] {
            #expect(listed.contains("\"\(name)\""), "\(name) is not listed")
        }
        try boxstack(["stash", "unpack", longName, "--root", directory.file("long")]).check()
        #expect(FileManager.default.fileExists(atPath: directory.file("long/file")))
        for bad in ["demo\n", "demo\n:1", String(repeating: "c", count: 256)] {
            let result = try boxstack(["stash", "--root", tree, "--container-name", bad])
            #expect(!result.status.isSuccess, "\(bad.debugDescription) was accepted")
        }
        let tagged = try boxstack(["stash", "--root", tree, "--container-name", "demo", "--tag", "v1\n"])
        #expect(!tagged.status.isSuccess)
        #expect(tagged.errorOutput.contains("\\n"))
    }

    @Test(arguments: [".", "..", "../boxes", "", "a/b"])
    func boxesRemoveTakesOnlyBoxNames(name: String) throws {
        let cache = directory.file("cache")
        let cached = cache + "/boxes/debian/x86_64"
        try FileManager.default.createDirectory(atPath: cached, withIntermediateDirectories: true)
        try "disk".write(toFile: cached + "/box.qcow2", atomically: false, encoding: .utf8)
        let result = try BoxstackBinary.run(["boxes", "rm", name], environment: ["BOXSTACK_CACHE_DIR": cache])
        #expect(!result.status.isSuccess)
        #expect(FileManager.default.fileExists(atPath: cached + "/box.qcow2"))
    }
}
