import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

/// Boxes/agent/boxstack-agent is plain sh, so its host-independent verbs run here as they do in a box.
@Suite struct BoxAgentTests {
    static let agent = repositoryRoot + "/Boxes/agent/boxstack-agent"

    func agent(_ arguments: [String]) throws -> ProcessResult {
        try Subprocess.run(["sh", Self.agent] + arguments)
    }

    /// Splits tree-manifest output into (path, fields, link target) records.
    func manifestRecords(_ data: Data) -> [String: (fields: [String], link: String)] {
        let parts = String(decoding: data, as: UTF8.self).components(separatedBy: "\0")
        var records: [String: (fields: [String], link: String)] = [:]
        var index = 0
        while index + 1 < parts.count {
            let fields = parts[index].components(separatedBy: "\t")
            if fields.count == 7 { records[fields[6]] = (fields, parts[index + 1]) }
            index += 2
        }
        return records
    }

    @Test func helloReportsProtocolVersionAndArchitecture() throws {
        let result = try agent(["hello"]).check()
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "agent-version=\(GuestAgent.protocolVersion)")
        #expect(lines.contains("arch=\(hostArchitecture)"))
        #expect(lines.contains { $0.hasPrefix("kiwi-version=") })
    }

    @Test(arguments: [["bogus"], [], ["mount", "nfs", "tag", "/mnt"], ["run", "--env", "1X=y", "--", "true"], ["hello", "extra"]])
    func misuseExitsTwoWithOneLine(arguments: [String]) throws {
        let result = try agent(arguments)
        #expect(result.status == .terminated(code: 2))
        #expect(result.errorOutput.split(separator: "\n").count == 1, "\(result.errorOutput)")
        #expect(result.errorOutput.hasPrefix("boxstack-agent: "))
    }

    @Test func runPassesDirectoryEnvironmentAndExitCode() throws {
        let workspace = try TemporaryDirectory("agent-run")
        let result = try agent([
            "run", "--cwd", workspace.path, "--env", "GREETING=hi there", "--",
            "sh", "-c", "echo \"$GREETING\"; pwd; exit 7",
        ])
        #expect(result.status == .terminated(code: 7))
        let directory = URL(fileURLWithPath: workspace.path).standardizedFileURL.path
        #expect(result.output == "hi there\n\(directory)\n")
    }

    @Test func runWatchingInputReturnsTheExitCodeAndEndsWithItsInput() throws {
        // stdin held open: the command finishes on its own with its own status and output.
        let input = try PipeEnds()
        let output = try PipeEnds()
        let process = try ChildProcess(
            ["sh", Self.agent, "run", "--watch-input", "--", "sh", "-c", "echo out; exit 5"],
            standardInput: input.read, standardOutput: output.write, standardError: 2)
        close(input.read)
        close(output.write)
        let printed = FileHandle(fileDescriptor: output.read, closeOnDealloc: true).readDataToEndOfFile()
        #expect(process.wait() == .terminated(code: 5))
        close(input.write)
        #expect(printed == Data("out\n".utf8))

        // stdin at end of file at once (Subprocess gives /dev/null): the command is ended, and the agent reports TERM as 128 + 15.
        let started = ContinuousClock.now
        let ended = try Subprocess.run(["sh", Self.agent, "run", "--watch-input", "--", "sleep", "300"])
        #expect(ended.status == .terminated(code: 128 + 15))
        #expect(ContinuousClock.now - started < .seconds(120))
    }

    @Test func treeManifestListsEveryEntryWithLinkTargets() throws {
        let workspace = try TemporaryDirectory("agent-manifest")
        let root = workspace.file("root")
        try Subprocess.run([
            "sh", "-c",
            """
            set -e; mkdir -p "$1/etc" "$1/proc/1" "$1/dev"; printf abc > "$1/etc/file"; chmod 640 "$1/etc/file"
            ln -s file "$1/etc/link"; touch "$1/proc/1/status" "$1/dev/null"
            """, "sh", root,
        ]).check()

        let records = manifestRecords(try agent(["tree-manifest", root]).check().standardOutput)
        #expect(Set(records.keys) == ["etc", "etc/file", "etc/link", "proc", "dev"])
        let file = try #require(records["etc/file"])
        #expect(file.fields[0] == "f" && file.fields[1] == "640" && file.fields[4] == "3")
        let link = try #require(records["etc/link"])
        #expect(link.fields[0] == "l" && link.link == "file")
        #expect(records["etc"]?.fields[0] == "d")
    }

    @Test func exportAndImportKeepSymlinksHardlinksAndModes() throws {
        let workspace = try TemporaryDirectory("agent-roundtrip")
        let source = workspace.file("source")
        try Subprocess.run([
            "sh", "-c",
            """
            set -e; mkdir -p "$1/bin" "$1/secret"; printf '#!/bin/sh\\n' > "$1/bin/tool"; chmod 4755 "$1/bin/tool"
            ln "$1/bin/tool" "$1/bin/tool-again"; ln -s ../bin/tool "$1/secret/link"; chmod 700 "$1/secret"
            printf 'not asked for' > "$1/bin/skipped"
            """, "sh", source,
        ]).check()
        let list = workspace.file("list")
        try Data(["bin", "bin/tool", "bin/tool-again", "secret", "secret/link"].map { $0 + "\0" }.joined().utf8)
            .write(to: URL(fileURLWithPath: list))
        let archive = workspace.file("tree.tar")
        try agent(["tree-export", source, list, archive]).check()

        let target = workspace.file("target")
        try agent(["tree-import", target, archive]).check()

        let files = FileManager.default
        #expect(!files.fileExists(atPath: target + "/bin/skipped"))
        #expect(try files.destinationOfSymbolicLink(atPath: target + "/secret/link") == "../bin/tool")
        let tool = try files.attributesOfItem(atPath: target + "/bin/tool")
        let again = try files.attributesOfItem(atPath: target + "/bin/tool-again")
        #expect((tool[.posixPermissions] as? Int) == 0o4755)
        #expect((tool[.systemFileNumber] as? Int) == (again[.systemFileNumber] as? Int))
        #expect((tool[.referenceCount] as? Int) == 2)
        let secret = try files.attributesOfItem(atPath: target + "/secret")
        #expect((secret[.posixPermissions] as? Int) == 0o700)
    }
}
