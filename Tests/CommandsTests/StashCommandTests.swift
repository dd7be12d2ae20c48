import BoxstackCore
import Foundation
import TestSupport
import Testing

/// The stash verbs, run as the real built `boxstack` binary against a store in a temporary directory.
@Suite struct StashCommandTests {
    private let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory("stash-command")
    }

    /// Runs `boxstack ARGUMENTS` with `BOXSTACK_STASH_DIR` set to `store` (default: this test's store).
    private func boxstack(_ arguments: [String], store: String? = nil) throws -> ProcessResult {
        try BoxstackBinary.run(arguments, environment: ["BOXSTACK_STASH_DIR": store ?? directory.file("store")])
    }

    private struct ListedStash: Decodable {
        var name: String
        var tags: [String]
        var layers: Int
        var size: Int64
        var created: String?
    }

    private func list(store: String? = nil) throws -> [ListedStash] {
        try JSONDecoder().decode([ListedStash].self, from: boxstack(["stash", "--list", "--json"], store: store).check().standardOutput)
    }

    @Test func stashTwiceListUnpackAndRemove() throws {
        let tree = directory.file("tree")
        try TreeFixture.shell("mkdir -p etc/sub && echo one > etc/a && echo two > etc/sub/b && ln -s a etc/link", in: tree)
        let first = try boxstack(["stash", "--root", tree, "--container-name", "demo", "--tag", "v1"]).check()
        #expect(first.output.contains("demo:v1"))
        #expect(first.output.contains("1 layer"))
        try TreeFixture.shell("rm etc/sub/b && echo changed > etc/a && echo new > etc/c", in: tree)
        let second = try boxstack(["stash", "--root", tree, "--container-name", "demo", "--tag", "v1", "--compression", "gzip"]).check()
        #expect(second.output.contains("2 layers"))
        #expect(second.output.contains("new layer"))

        let listed = try list()
        #expect(listed.count == 1)
        #expect(listed.first?.name == "demo")
        #expect(listed.first?.tags == ["v1"])
        #expect(listed.first?.layers == 2)
        #expect((listed.first?.size ?? 0) > 0)
        #expect(listed.first?.created != nil)
        let table = try boxstack(["stash", "--list"]).check().output
        #expect(table.contains("NAME") && table.contains("demo") && table.contains("v1"))

        let unpacked = directory.file("unpacked")
        let unpack = try boxstack(["stash", "unpack", "demo:v1", "--root", unpacked]).check()
        #expect(unpack.output.contains("unpacked demo:v1"))
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(unpacked))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")

        let missingTag = try boxstack(["stash", "rm", "demo:nope"])
        #expect(!missingTag.status.isSuccess)
        #expect(missingTag.errorOutput.contains("no tag nope"))
        try boxstack(["stash", "rm", "demo:v1"]).check()
        #expect(try list().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory.file("store/demo")))
    }

    @Test func invalidNameErrorMentionsContainerName() throws {
        let tree = directory.file("tree")
        try TreeFixture.shell("echo x > file", in: tree)
        let result = try boxstack(["stash", "--root", tree, "--container-name", "Not_Valid"])
        #expect(!result.status.isSuccess)
        #expect(result.errorOutput.contains("--container-name"))
        #expect(result.errorOutput.split(separator: "\n").count == 1, "one sentence: \(result.errorOutput)")
        #expect(try list().isEmpty)
    }

    @Test func listOnAnEmptyStore() throws {
        #expect(try boxstack(["stash", "--list"]).check().output.contains("no stashes"))
        #expect(try list().isEmpty)
    }

    @Test func everyVerbHasItsOwnHelp() throws {
        var abstracts: Set<String> = []
        for verb in ["rm", "push", "pull", "unpack"] {
            let help = try boxstack(["stash", verb, "--help"]).check().output
            let overview = help.split(separator: "\n").first.map(String.init) ?? ""
            #expect(overview.hasPrefix("OVERVIEW:"), "\(verb): \(help)")
            abstracts.insert(overview)
        }
        #expect(abstracts.count == 4)
    }

    @Test(.enabled(if: Subprocess.which("docker-registry") != nil))
    func pushThenPullIntoAnotherStore() throws {
        let registry = try RegistryServer()
        defer { registry.stop() }
        let tree = directory.file("tree")
        try TreeFixture.shell("mkdir -p usr/bin && echo tool > usr/bin/tool && chmod 755 usr/bin/tool", in: tree)
        try boxstack(["stash", "--root", tree, "--container-name", "pushed"]).check()
        try TreeFixture.shell("echo more > usr/bin/more", in: tree)
        try boxstack(["stash", "--root", tree, "--container-name", "pushed"]).check()

        let push = try boxstack(["stash", "push", "pushed", "\(registry.address)/team/pushed:v2", "--tls-verify=false"]).check()
        #expect(push.output.contains("pushed pushed:latest"))

        let otherStore = directory.file("other-store")
        let pull = try boxstack(["stash", "pull", "\(registry.address)/team/pushed:v2", "--as", "copy:v2"], store: otherStore).check()
        #expect(pull.output.contains("copy:v2"))
        let listed = try list(store: otherStore)
        #expect(listed.map(\.name) == ["copy"])
        #expect(listed.first?.layers == 2)
        let unpacked = directory.file("unpacked")
        try boxstack(["stash", "unpack", "copy:v2", "--root", unpacked], store: otherStore).check()
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(unpacked))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")

        // Without --as the stash takes the repository's name and tag; a missing image fails and stores nothing.
        try boxstack(["stash", "pull", "\(registry.address)/team/pushed:v2"], store: otherStore).check()
        #expect(try list(store: otherStore).map(\.name) == ["copy", "team/pushed"])
        let missing = try boxstack(["stash", "pull", "\(registry.address)/team/absent:v1"], store: otherStore)
        #expect(!missing.status.isSuccess)
        #expect(missing.errorOutput.hasPrefix("boxstack: "))
        #expect(try list(store: otherStore).map(\.name) == ["copy", "team/pushed"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: otherStore).filter { $0.hasPrefix(".tmp-") }
        #expect(leftovers.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: otherStore + "/team/absent"))
    }

    @Test func theDefaultNameAndLabelsComeFromTheTreesDescription() throws {
        let tree = directory.file("tree")
        try TreeFixture.makeSampleTree(at: tree)
        let stashed = try boxstack(["stash", "--root", tree]).check()
        #expect(stashed.output.contains("sample-image:latest"))
        let layout = directory.file("store/sample-image")
        let inspect = try Subprocess.run(["skopeo", "inspect", "oci:" + layout + ":latest"]).check()
        #expect(inspect.output.contains("\"io.boxstack.description.version\": \"1.2.3\""))
        #expect(inspect.output.contains("Test Author"))
    }

    @Test func aDefaultNameFromTheDescriptionIsValidated() throws {
        let tree = directory.file("tree")
        try TreeFixture.makeSampleTree(at: tree, imageName: "Leap-VM")
        let result = try boxstack(["stash", "--root", tree])
        #expect(!result.status.isSuccess)
        #expect(result.errorOutput.contains("\"Leap-VM\""))
        #expect(result.errorOutput.contains("leap-vm"))
        #expect(try list().isEmpty)
    }

    @Test func aTreeWithoutADescriptionNeedsAName() throws {
        let tree = directory.file("bare")
        try TreeFixture.shell("echo hi > file", in: tree)
        let result = try boxstack(["stash", "--root", tree])
        #expect(!result.status.isSuccess)
        #expect(result.errorOutput.contains("--container-name"))
    }
}
