import BoxstackCore
import Foundation
import TestSupport

/// Runs the real `boxstack` binary against the test box, with a private stash store and runs directory.
struct BoxstackCLI {
    let workspace: TemporaryDirectory
    var environment: [String: String]

    static var binary: String { BoxstackBinary.path }

    /// A catalog entry for the test box as `name`; `cmdline` replaces its kernel arguments, and `aarch64`
    /// adds the aarch64 test box.
    static func catalogEntry(name: String, cmdline: [String] = ["root=/dev/vda", "rw"], aarch64: Bool = false) throws -> String {
        func architecture(_ arch: String, console: String? = nil) throws -> String {
            let directory = (try TestBox.image(arch: arch).kernel as NSString).deletingLastPathComponent
            let consoleLine = console.map { "\n        console: \($0)" } ?? ""
            return """
                      \(arch):
                        source: file://\(directory)/
                        kernel: debian-box.\(arch).kernel
                        initrd: debian-box.\(arch).initrd
                        disk: debian-box.\(arch).qcow2
                        cmdline: [\(cmdline.joined(separator: ", "))]\(consoleLine)

                """
        }
        let header = """
              - name: \(name)
                description: the test box
                memory: 2G
                cpus: 2
                console: ttyS0
                arch:

            """
        return header + (try architecture("x86_64")) + (aarch64 ? try architecture("aarch64", console: "ttyAMA0") : "")
    }

    /// `extraCatalog` adds catalog entries (YAML list items, see `catalogEntry`) next to the test box;
    /// `aarch64` gives the test box its aarch64 build as well.
    init(_ label: String, extraCatalog: String = "", aarch64: Bool = false) throws {
        workspace = try TemporaryDirectory(label)
        _ = try BoxstackBinary.checked()
        let catalog = "boxes:\n" + (try Self.catalogEntry(name: "debian", aarch64: aarch64)) + extraCatalog
        try Data(catalog.utf8).write(to: URL(fileURLWithPath: workspace.file("catalog.yaml")))
        var environment = ProcessInfo.processInfo.environment
        environment["BOXSTACK_CATALOG"] = workspace.file("catalog.yaml")
        // One box cache for the whole test run: the box is copied and verified once, not per test.
        environment["BOXSTACK_CACHE_DIR"] = environment["BOXSTACK_TEST_CACHE_DIR"] ?? NSTemporaryDirectory() + "/boxstack-test-cache"
        environment["BOXSTACK_STASH_DIR"] = workspace.file("stashes")
        // Its own runs directory, so a test sees only its own runs (the libvirt session stays the user's).
        environment["BOXSTACK_RUNS_DIR"] = workspace.file("runs")
        self.environment = environment
    }

    var runsDirectory: String { workspace.file("runs") }

    /// Runs boxstack to completion.
    func run(_ arguments: [String]) throws -> ProcessResult {
        try Subprocess.run([Self.binary] + arguments, environment: environment, currentDirectory: workspace.path)
    }

    /// Starts boxstack without waiting; stderr goes to `stderrPath`.
    func start(_ arguments: [String], stderrPath: String) throws -> ChildProcess {
        let errors = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(errors)
            close(null)
        }
        return try ChildProcess(
            [Self.binary] + arguments, environment: environment, currentDirectory: workspace.path,
            standardInput: null, standardOutput: null, standardError: errors)
    }

    /// A tiny root tree that `kiwi-ng system create` turns into a tarball without any repository:
    /// busybox plus its own `image/config.xml`, and the few paths KIWI inspects.
    func makeTinyRoot(at root: String, name: String = "tiny-root") throws {
        let fileManager = FileManager.default
        for directory in ["bin", "etc", "image", "usr/share/doc", "var/lib/dpkg", "tmp"] {
            try fileManager.createDirectory(atPath: "\(root)/\(directory)", withIntermediateDirectories: true)
        }
        try Subprocess.run(["cp", "/bin/busybox", "\(root)/bin/busybox"]).check()
        try fileManager.createSymbolicLink(atPath: "\(root)/bin/sh", withDestinationPath: "busybox")
        fileManager.createFile(atPath: "\(root)/var/lib/dpkg/status", contents: Data())
        try Data("tiny\n".utf8).write(to: URL(fileURLWithPath: "\(root)/etc/hostname"))
        let config = """
            <?xml version="1.0" encoding="utf-8"?>
            <image schemaversion="7.5" name="\(name)">
              <description type="system">
                <author>boxstack tests</author>
                <contact>tests@example.org</contact>
                <specification>A tiny root tree for kiwi-ng system create</specification>
              </description>
              <preferences>
                <version>1.0.0</version>
                <packagemanager>apt</packagemanager>
                <type image="tbz"/>
              </preferences>
              <repository type="apt-deb"><source path="http://deb.debian.org/debian"/></repository>
              <packages type="image"><package name="busybox-static"/></packages>
              <packages type="bootstrap"><package name="busybox-static"/></packages>
            </image>
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: "\(root)/image/config.xml"))
    }
}

extension ProcessResult {
    var combined: String { output + errorOutput }
}
