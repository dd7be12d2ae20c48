import BoxstackCore
import Foundation
import TestSupport
import Testing

/// The command line as a user meets it: help texts and errors of the real binary.
@Suite struct CLIGrammarTests {
    static func boxstack(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try BoxstackBinary.run(arguments, environment: environment)
    }

    @Test func helpShowsTheWholeGrammarWithAnExampleOfTheSeparator() throws {
        let help = try Self.boxstack(["--help"]).check().output
        for expected in [
            "boxstack [BOX OPTIONS] -- --description DIR --target-dir DIR",
            "--stash NAME[:TAG]...", "--keep-root NAME[:TAG]", "stash --root DIR", "boxes list",
            "doctor", "boxstack --box debian -- --description tiny --target-dir out",
            "boxstack -- --description tiny-derived --target-dir out",
            "--box-memory", "--9p-sharing", "--virtiofs-sharing", "--sshfs-sharing", "--aarch64", "--offline",
            "--connect", "--timeout", "--no-accel",
        ] {
            #expect(help.contains(expected), "help lacks \(expected)")
        }
    }

    @Test(arguments: [
        ["boxes"], ["boxes", "list"], ["boxes", "fetch"], ["boxes", "update"], ["boxes", "rm"], ["boxes", "run"],
        ["boxes", "push"], ["stash"], ["doctor"], ["gc"],
    ])
    func everySubcommandHasItsOwnHelp(path: [String]) throws {
        let result = try Self.boxstack(path + ["--help"]).check()
        #expect(result.output.contains("USAGE: boxstack \(path.joined(separator: " "))"))
    }

    @Test(arguments: [
        (["--box-debug", "boxes", "list"], "--box-debug"), (["--kiwi-version", "9.24.57", "boxes", "run", "debian"], "--kiwi-version"),
        (["--keep-root", "x:1", "boxes", "fetch", "debian"], "--keep-root"), (["--box-memory", "8G", "boxes", "rm", "debian"], "--box-memory"),
    ])
    func boxOptionsThatDoNotApplyToAVerbAreRefused(arguments: [String], option: String) throws {
        let result = try Self.boxstack(arguments, environment: ["BOXSTACK_CACHE_DIR": NSTemporaryDirectory() + "/boxstack-none"])
        #expect(!result.status.isSuccess)
        #expect(result.errorOutput.contains("\(option) does not apply to 'boxstack \(arguments[arguments.firstIndex(of: "boxes")!]) "))
    }

    /// A box is published under a tag, which its catalog entry names; nothing is fetched or uploaded first.
    @Test(arguments: ["127.0.0.1:1/boxes/debian", "127.0.0.1:1/boxes/debian@sha256:" + String(repeating: "0", count: 64)])
    func aBoxPushWithoutATagIsRefusedBeforeAnything(destination: String) throws {
        let result = try Self.boxstack(
            ["boxes", "push", "debian", destination], environment: ["BOXSTACK_CACHE_DIR": NSTemporaryDirectory() + "/boxstack-none"])
        #expect(result.status == .terminated(code: 64))
        #expect(result.errorOutput.contains("push a box to a tag"), "\(result.errorOutput)")
    }

    @Test func versionIsPrinted() throws {
        #expect(try Self.boxstack(["--version"]).check().output.trimmingCharacters(in: .whitespacesAndNewlines) == BoxstackVersion.current)
    }

    @Test func anUnknownOptionGetsAOneLineErrorNamingIt() throws {
        let result = try Self.boxstack(["--box-colour", "red", "--", "--description", "d", "--target-dir", "t"])
        #expect(result.status == .terminated(code: 64))
        let firstLine = result.errorOutput.split(separator: "\n").first.map(String.init) ?? ""
        #expect(firstLine.contains("--box-colour"), "\(result.errorOutput)")
    }

    @Test func aBadMemorySizeIsRejectedBeforeAnythingRuns() throws {
        let result = try Self.boxstack(["--box-memory", "lots", "--", "--description", "d", "--target-dir", "t"])
        #expect(result.status == .terminated(code: 64))
        #expect(result.errorOutput.contains("--box-memory 'lots' is not a size"))
    }

    @Test func withoutKiwiArgumentsItSaysWhatToGive() throws {
        let result = try Self.boxstack(["--box", "debian"])
        #expect(result.status == .terminated(code: 64))
        #expect(result.errorOutput.contains("after '--'"))
    }

    /// A derived description is checked against Schemas/derived.rng while the arguments are read: no box is
    /// fetched and no target directory made.
    @Test func aDerivedDescriptionTheSchemaRefusesStopsBeforeAnyBox() throws {
        let directory = try TemporaryDirectory("cli-derived")
        let description = directory.file("derived/config.xml")
        try FileManager.default.createDirectory(atPath: directory.file("derived"), withIntermediateDirectories: true)
        try Data("<derived>\n<base stash=\"tiny:1\"/>\n<packages><archive name=\"a.tar.gz\"/></packages>\n</derived>\n".utf8)
            .write(to: URL(fileURLWithPath: description))
        let result = try Self.boxstack(
            ["--", "--description", directory.file("derived"), "--target-dir", directory.file("out")],
            environment: ["BOXSTACK_CACHE_DIR": directory.file("cache")])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains(description + ":3: <archive>"), "\(result.errorOutput)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("cache")))
        #expect(!FileManager.default.fileExists(atPath: directory.file("out")))
    }

    @Test func boxesListShowsTheCatalogAsJSON() throws {
        let cache = try TemporaryDirectory("cli-boxes")
        let result = try Self.boxstack(["boxes", "list", "--json"], environment: ["BOXSTACK_CACHE_DIR": cache.path]).check()
        let rows = try JSONSerialization.jsonObject(with: result.standardOutput) as? [[String: Any]] ?? []
        let names = Set(rows.compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["debian", "leap", "tumbleweed", "fedora", "ubuntu"]))
        #expect(rows.contains { $0["name"] as? String == "debian" && $0["state"] as? String == "not fetched" })
    }

    @Test func aMalformedUserCatalogNamesFileLineAndField() throws {
        let directory = try TemporaryDirectory("cli-catalog")
        let catalog = directory.file("catalog.yaml")
        try Data("boxes:\n  - name: x\n    description: d\n    memory: lots\n    cpus: 1\n    console: ttyS0\n    arch: {}\n".utf8)
            .write(to: URL(fileURLWithPath: catalog))
        let result = try Self.boxstack(["boxes", "list"], environment: ["BOXSTACK_CATALOG": catalog])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains(catalog))
        #expect(result.errorOutput.contains("line 4"))
        #expect(result.errorOutput.contains("memory"))
    }

    /// Box options belong to the root command but must reach the box verbs: `--arch` chooses what is fetched.
    @Test func boxesFetchHonoursTheArchitecture() throws {
        let directory = try TemporaryDirectory("cli-arch")
        let catalog = directory.file("catalog.yaml")
        try Data(
            """
            boxes:
              - name: only-x86
                description: d
                memory: 1G
                cpus: 1
                console: ttyS0
                arch:
                  x86_64: {source: "file:///nonexistent/", kernel: k, initrd: i, disk: d, cmdline: [rw]}
            """.utf8
        ).write(to: URL(fileURLWithPath: catalog))
        let result = try Self.boxstack(
            ["boxes", "fetch", "only-x86", "--arch", "aarch64"],
            environment: ["BOXSTACK_CATALOG": catalog, "BOXSTACK_CACHE_DIR": directory.file("cache")])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains("no aarch64 variant"), "\(result.errorOutput)")
    }
}
