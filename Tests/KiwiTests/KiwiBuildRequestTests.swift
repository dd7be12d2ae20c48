import BoxstackCore
import Foundation
import Kiwi
import TestSupport
import Testing

@Suite struct KiwiBuildRequestTests {
    let workspace: TemporaryDirectory
    init() throws {
        workspace = try TemporaryDirectory("kiwi-args")
        try FileManager.default.createDirectory(atPath: workspace.file("desc"), withIntermediateDirectories: true)
    }

    @Test func relativePathsBecomeAbsoluteAndOptionsPassOn() throws {
        let request = try KiwiBuildRequest.parse(
            ["--description", "desc", "--target-dir=out/../img", "--add-package", "vim", "--clear-cache"],
            currentDirectory: workspace.path)
        #expect(request.descriptionDirectory == workspace.file("desc"))
        #expect(request.targetDirectory == workspace.file("img"))
        #expect(request.options == ["--add-package=vim", "--clear-cache"])
        #expect(request.kiwiCommand == ["system", "build"])
    }

    @Test(arguments: [
        (["--description", "desc", "--target-dir", "t", "--bogus"], "--bogus"),
        (["--description", "desc"], "--target-dir"),
        (["--target-dir", "t"], "--description"),
        (["--description", "desc", "--target-dir", "t", "--clear-cache=yes"], "--clear-cache takes no value"),
        (["--description", "desc", "--target-dir", "t", "--set-repo", "a", "--set-repo", "b"], "only once"),
        (["--description", "desc", "--target-dir", "t", "stray"], "stray"),
        (["--description", "missing", "--target-dir", "t"], "does not exist"),
        (["--stash", "a", "--target-dir", "t", "--add-package", "vim"], "needs --description"),
        (["--description", "desc", "--target-dir", "t", "--from-registry", "r"], "--from-registry"),
    ])
    func wrongArgumentsAreNamed(arguments: [String], expected: String) {
        #expect {
            _ = try KiwiBuildRequest.parse(arguments, currentDirectory: workspace.path)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func stackbuildWithoutDescriptionRunsSystemCreate() throws {
        let request = try KiwiBuildRequest.parse(
            ["--stash", "base:1", "--stash", "extra", "--from-registry", "127.0.0.1:5000/x", "--target-dir", "t"],
            currentDirectory: workspace.path)
        #expect(request.stashes == ["base:1", "extra"])
        #expect(request.fromRegistry == "127.0.0.1:5000/x")
        #expect(request.kiwiCommand == ["system", "create"])
        #expect(request.isStackbuild)
    }

    @Test func aDerivedDescriptionBuildsOnTheStashItNames() throws {
        let fixture = repositoryRoot + "/Tests/Fixtures/tiny-debian-derived"
        let request = try KiwiBuildRequest.parse(
            ["--description", fixture, "--from-registry", "127.0.0.1:5000/x", "--target-dir", "t"], currentDirectory: workspace.path)
        #expect(request.derived?.path == fixture + "/config.xml")
        #expect(request.stashes == ["tiny-debian:1"])
        #expect(request.fromRegistry == "127.0.0.1:5000/x")
        #expect(request.kiwiCommand == ["system", "build"])
        #expect(request.isStackbuild)
    }

    @Test func aDerivedDescriptionTakesNoStash() {
        let fixture = repositoryRoot + "/Tests/Fixtures/tiny-debian-derived"
        let error = #expect(throws: BoxstackError.self) {
            try KiwiBuildRequest.parse(["--stash", "other", "--description", fixture, "--target-dir", "t"], currentDirectory: workspace.path)
        }
        #expect(error?.message.contains("leave out --stash") == true)
        #expect(error?.message.contains(fixture + "/config.xml:5: <base stash=\"tiny-debian:1\">") == true, "\(error?.message ?? "")")
    }

    @Test func anInvalidDerivedDescriptionIsRefusedWhileTheArgumentsAreRead() throws {
        try Data("<derived>\n<base stash=\"b\"/>\n<packages><wrong/></packages>\n</derived>\n".utf8).write(
            to: URL(fileURLWithPath: workspace.file("desc/config.xml")))
        let error = #expect(throws: BoxstackError.self) {
            try KiwiBuildRequest.parse(["--description", "desc", "--target-dir", "t"], currentDirectory: workspace.path)
        }
        #expect(error?.message.contains(workspace.file("desc/config.xml") + ":3") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("wrong") == true)
    }
}

/// The option tables must match the KIWI that is installed (the same KIWI the debian box carries).
@Suite struct KiwiOptionsTests {
    static func usage(of module: String) throws -> String {
        // Debian's python3 carries the kiwi package; a python3 earlier on PATH may not.
        try Subprocess.run(["/usr/bin/python3", "-c", "import kiwi.tasks.\(module) as m; print(m.__doc__)"]).check().output
    }

    static func declaredOptions(_ usage: String) -> Set<String> {
        let usagePart = usage.components(separatedBy: "commands:")[0]
        let pattern = try! NSRegularExpression(pattern: "\\[?(--[a-z][a-z0-9-]*)")
        let range = NSRange(usagePart.startIndex..., in: usagePart)
        return Set(
            pattern.matches(in: usagePart, range: range).compactMap {
                Range($0.range(at: 1), in: usagePart).map { String(usagePart[$0]) }
            }
        ).subtracting(["--help"])
    }

    @Test func systemBuildTableMatchesInstalledKiwi() throws {
        let installed = Self.declaredOptions(try Self.usage(of: "system_build"))
        #expect(installed == Set(KiwiOptions.systemBuild.map(\.name)))
    }

    @Test func systemCreateTableMatchesInstalledKiwi() throws {
        let installed = Self.declaredOptions(try Self.usage(of: "system_create"))
        #expect(installed == Set(KiwiOptions.systemCreate.map(\.name)))
    }
}

@Suite struct KiwiDescriptionTests {
    @Test func readsNameVersionAndRepositories() throws {
        let directory = try TemporaryDirectory("kiwi-desc")
        let xml = """
            <?xml version="1.0" encoding="utf-8"?>
            <image schemaversion="7.4" name="tiny">
              <description type="system"><author>A. Uthor</author><contact>a@example.org</contact>
              <specification>tiny</specification></description>
              <preferences><version>1.2.3</version><packagemanager>apt</packagemanager></preferences>
              <repository type="apt-deb"><source path="http://deb.debian.org/debian"/></repository>
            </image>
            """
        try Data(xml.utf8).write(to: URL(fileURLWithPath: directory.file("tiny.kiwi")))
        let description = try KiwiDescription(directory: directory.path)
        #expect(description.name == "tiny")
        #expect(description.version == "1.2.3")
        #expect(description.author == "A. Uthor")
        #expect(description.packageManager == "apt")
        #expect(description.repositories == ["http://deb.debian.org/debian"])
    }

    @Test func anAptBootstrapSectionIsRefusedOnTopOfAStashOnly() throws {
        let directory = try TemporaryDirectory("kiwi-derived")
        let xml = """
            <?xml version="1.0" encoding="utf-8"?>
            <image schemaversion="7.5" name="derived">
              <preferences><version>1</version><packagemanager>apt</packagemanager></preferences>
              <packages type="image"><package name="vim-tiny"/></packages>
              <packages type="bootstrap"><package name="ca-certificates"/></packages>
            </image>
            """
        try Data(xml.utf8).write(to: URL(fileURLWithPath: directory.file("config.xml")))
        #expect(try KiwiDescription(directory: directory.path).bootstrapPackages == ["ca-certificates"])
        #expect {
            _ = try KiwiBuildRequest.parse(
                ["--stash", "base", "--description", directory.path, "--target-dir", "t"], currentDirectory: directory.path)
        } throws: { error in
            "\(error)".contains("move ca-certificates to <packages type=\"image\">")
        }
        // An ordinary build bootstraps an empty root: the same description is fine there.
        _ = try KiwiBuildRequest.parse(["--description", directory.path, "--target-dir", "t"], currentDirectory: directory.path)
        // The slow tier's derived description builds on a stash.
        _ = try KiwiBuildRequest.parse(
            ["--stash", "tiny-debian:1", "--description", repositoryRoot + "/Tests/Fixtures/tiny-debian-vim", "--target-dir", "t"],
            currentDirectory: directory.path)
    }

    @Test func emptyDirectoryIsNamed() throws {
        let directory = try TemporaryDirectory("kiwi-empty")
        #expect { try KiwiDescription(directory: directory.path) } throws: { "\($0)".contains("no KIWI description") }
    }
}
