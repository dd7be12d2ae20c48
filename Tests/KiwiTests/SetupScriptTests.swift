import Foundation
import TestSupport
import Testing

/// What a newcomer runs first must name only what the repository has: the setup and test scripts
/// and the README refer to existing paths, and the demo the setup builds is a valid KIWI description.
@Suite struct SetupScriptTests {
    /// Repository paths named in `file` (words starting with a top-level directory of the checkout).
    static func namedPaths(in file: String) throws -> Set<String> {
        let text = try String(contentsOfFile: repositoryRoot + "/" + file, encoding: .utf8)
        let directories = "Boxes|Schemas|Scripts|Tests|Sources|Examples"
        let pattern = try NSRegularExpression(pattern: #"(?<![A-Za-z0-9_.$/-])(?:"# + directories + #")/[A-Za-z0-9_./-]*[A-Za-z0-9_]"#)
        let range = NSRange(text.startIndex..., in: text)
        return Set(pattern.matches(in: text, range: range).compactMap { Range($0.range, in: text).map { String(text[$0]) } })
    }

    @Test(arguments: ["Scripts/setup", "Scripts/test", "README.md", ".ci/run"])
    func everyRepositoryPathNamedExists(file: String) throws {
        // Boxes/build/ is what Scripts/build-box publishes; it is made, not shipped.
        let missing = try Self.namedPaths(in: file).filter {
            !$0.hasPrefix("Boxes/build") && !FileManager.default.fileExists(atPath: repositoryRoot + "/" + $0)
        }
        #expect(missing.isEmpty, "\(file) names paths the repository does not have: \(missing.sorted())")
    }

    @Test func theSetupBuildsTheDemoTheReadmePromises() throws {
        let setup = try String(contentsOfFile: repositoryRoot + "/Scripts/setup", encoding: .utf8)
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        #expect(setup.contains("--description \"$work/Tests/Fixtures/tiny-debian\""))
        #expect(readme.contains("Tests/Fixtures/tiny-debian"))
    }

    /// A root checkout (under /root, say) may be closed to the build user: a command run as that user
    /// from there fails before it starts ("failed to stat"), so each one starts in the user's home.
    @Test(arguments: ["Scripts/setup", "Scripts/test"])
    func commandsRunAsAnotherUserStartInThatUsersHome(file: String) throws {
        let text = try String(contentsOfFile: repositoryRoot + "/" + file, encoding: .utf8)
        let runuserLines = text.split(separator: "\n").filter { $0.contains("runuser -u") }
        #expect(!runuserLines.isEmpty)
        for line in runuserLines {
            #expect(line.contains("-C \"$home\""), "\(file): \(line.trimmingCharacters(in: .whitespaces))")
        }
    }

    /// BoxDescriptionSchemaTests checks every fixture description against KIWI's schema: the demo is one.
    @Test func theDemoDescriptionIsCheckedAgainstKiwisSchema() {
        #expect(BoxDescriptionSchemaTests.fixtureDescriptions.contains(repositoryRoot + "/Tests/Fixtures/tiny-debian/config.kiwi"))
    }
}
