import BoxstackCore
import Foundation
import Kiwi
import TestSupport
import Testing
import XML

/// The merge rules of README.md, "Derived descriptions", one test each, against the stored description
/// in Tests/Fixtures/stored-description.
@Suite struct DescriptionMergeTests {
    static let storedBase = repositoryRoot + "/Tests/Fixtures/stored-description/config.xml"
    let workspace: TemporaryDirectory
    /// Where `derived(_:)` writes; its body starts on line 4.
    let derivedPath: String

    init() throws {
        workspace = try TemporaryDirectory("merge")
        derivedPath = workspace.file("config.xml")
    }

    /// A derived description on `base:1` with `body` after its `<base>`, written to `derivedPath`.
    func derived(_ body: String, attributes: String = "") throws -> DerivedDescription {
        let text = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<derived\(attributes)>\n<base stash=\"base:1\"/>\n\(body)\n</derived>\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: derivedPath))
        return try DerivedDescription(file: derivedPath)
    }

    func merged(_ body: String, attributes: String = "", base: String = storedBase) throws -> XMLDocument {
        try derived(body, attributes: attributes).merge(into: try Data(contentsOf: URL(fileURLWithPath: base)), basePath: base)
    }

    func mergeError(_ body: String, base: String = storedBase) -> String {
        do {
            _ = try merged(body, base: base)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    // MARK: Recognition and schema

    @Test func aDerivedDescriptionIsRecognizedByItsRootElement() throws {
        let fixture = repositoryRoot + "/Tests/Fixtures/tiny-debian-derived"
        let derived = try #require(try DerivedDescription.recognize(inDirectory: fixture))
        #expect(derived.path == fixture + "/config.xml")
        #expect(derived.baseStash == "tiny-debian:1")
        #expect(derived.baseLocation == fixture + "/config.xml:5: <base stash=\"tiny-debian:1\">")
        #expect(try DerivedDescription.recognize(inDirectory: repositoryRoot + "/Tests/Fixtures/tiny-debian") == nil)
        #expect(try DerivedDescription.recognize(inDirectory: workspace.path) == nil)
    }

    @Test func theSchemaIsTheRepositorysFile() throws {
        #expect(try DerivedDescription.schemaPath() == repositoryRoot + "/Schemas/derived.rng")
    }

    @Test(arguments: [
        ("<packages>\n<package name=\"vim\"/>\n<archive name=\"a.tar.gz\"/>\n</packages>", "archive"),
        ("<preferences>\n<packagemanager>zypper</packagemanager>\n</preferences>", "packagemanager"),
        ("<drivers/>", "drivers"),
        ("<preferences>\n<version>one</version>\n</preferences>", "version"),
    ])
    func anElementTheSchemaDoesNotAllowIsNamedWithItsFile(body: String, element: String) {
        let error = #expect(throws: BoxstackError.self) { try derived(body) }
        #expect(error?.message.contains(derivedPath + ":") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(element) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("Schemas/derived.rng") == true)
    }

    @Test func aDerivedDescriptionWithoutItsBaseIsRefused() throws {
        try Data("<derived>\n<packages><package name=\"vim\"/></packages>\n</derived>\n".utf8).write(to: URL(fileURLWithPath: derivedPath))
        let error = #expect(throws: BoxstackError.self) { try DerivedDescription(file: derivedPath) }
        #expect(error?.message.contains(derivedPath) == true)
        #expect(error?.message.contains(derivedPath + ":1: <derived>: its first element must be <base stash=") == true, "\(error?.message ?? "")")
    }

    // MARK: What replaces

    @Test func theNameReplacesTheBasesName() throws {
        #expect(try merged("", attributes: " name=\"derived-image\"").string("/image/@name") == "derived-image")
        #expect(try merged("").string("/image/@name") == "base-image")
    }

    @Test func descriptionChildrenReplaceTheBasesOnes() throws {
        let document = try merged("<description><specification>Derived</specification></description>")
        #expect(document.strings("/image/description/specification") == ["Derived"])
        #expect(document.strings("/image/description/author") == ["Base Author"])
    }

    @Test func preferencesReplaceTheChildOfTheSameNameAndAddTheOthers() throws {
        let document = try merged("<preferences>\n<version>2.0.0</version>\n<keytable>de</keytable>\n</preferences>")
        #expect(document.strings("/image/preferences[1]/version") == ["2.0.0"])
        #expect(document.strings("/image/preferences[1]/keytable") == ["de"])
        #expect(document.strings("/image/preferences[1]/locale") == ["en_US"])
        // Without types of its own, the base's types stay.
        #expect(document.strings("/image/preferences[1]/type/@image") == ["tbz", "oem"])
    }

    @Test func derivedTypesReplaceAllTypesOfTheMainPreferences() throws {
        let document = try merged("<preferences>\n<type image=\"iso\" publisher=\"derived\"/>\n</preferences>")
        #expect(document.strings("/image/preferences[1]/type/@image") == ["iso"])
        #expect(document.string("/image/preferences[1]/type/@publisher") == "derived")
        // Preferences for a profile are not the main ones and keep their types.
        #expect(document.strings("/image/preferences[@profiles='big']/type/@image") == ["iso"])
    }

    @Test func aRepositoryWithTheAliasOfABaseRepositoryReplacesItInPlace() throws {
        let document = try merged(
            "<repository type=\"apt-deb\" alias=\"bookworm\" distribution=\"bookworm\"><source path=\"http://ftp.de.debian.org/debian\"/></repository>"
        )
        #expect(
            document.strings("/image/repository/source/@path") == [
                "http://ftp.de.debian.org/debian", "http://security.debian.org/debian-security",
            ])
    }

    @Test func aRepositoryWithoutAliasReplacesTheOneWithItsSourcePath() throws {
        let document = try merged(
            "<repository type=\"apt-deb\" distribution=\"bookworm-security\" components=\"main contrib\"><source path=\"http://security.debian.org/debian-security\"/></repository>"
        )
        #expect(document.strings("/image/repository").count == 2)
        #expect(document.string("/image/repository[2]/@components") == "main contrib")
    }

    @Test func aUserWithTheNameOfABaseUserReplacesIt() throws {
        let document = try merged("<users><user name=\"tux\" password=\"new\" pwdformat=\"plain\" shell=\"/bin/zsh\"/></users>")
        #expect(document.strings("//users/user/@name") == ["root", "tux"])
        #expect(document.string("//user[@name='tux']/@password") == "new")
        #expect(document.string("//user[@name='tux']/@home") == nil)
    }

    // MARK: What adds

    @Test func otherRepositoriesComeAfterTheBasesOnes() throws {
        let document = try merged(
            "<repository alias=\"extra\"><source path=\"http://a.example/one\"/></repository>\n<repository alias=\"more\"><source path=\"http://a.example/two\"/></repository>"
        )
        #expect(document.strings("/image/repository/@alias") == ["bookworm", "extra", "more"])
    }

    @Test func packagesJoinTheBasesImageSectionOnce() throws {
        let document = try merged("<packages>\n<package name=\"vim\"/>\n<package name=\"bash\"/>\n</packages>")
        #expect(document.strings("/image/packages[@type='image' and not(@profiles)]/package/@name") == ["bash", "nano", "vim"])
        #expect(document.strings("/image/packages[@profiles='big']/package/@name") == ["nano", "man-db"])
    }

    @Test func packagesAndUsersGetTheirSectionWhenTheBaseHasNone() throws {
        let base = workspace.file("base.xml")
        try Data(
            """
            <image schemaversion="7.5" name="b"><description type="system"><author>a</author><contact>c</contact><specification>s</specification></description>
            <preferences><version>1.0.0</version><packagemanager>apt</packagemanager><type image="tbz"/></preferences>
            <packages type="bootstrap"><package name="bash"/></packages></image>
            """.utf8
        ).write(to: URL(fileURLWithPath: base))
        let document = try merged(
            "<packages><package name=\"vim\"/></packages>\n<users><user name=\"joe\" password=\"x\"/></users>", base: base)
        #expect(document.strings("/image/packages/@type") == ["image"])
        #expect(document.strings("/image/packages/package/@name") == ["vim"])
        #expect(document.strings("/image/users/user/@name") == ["joe"])
    }

    @Test func otherUsersJoinTheBasesUsers() throws {
        let document = try merged("<users><user name=\"joe\" password=\"x\" pwdformat=\"plain\"/></users>")
        #expect(document.strings("/image/users/user/@name") == ["root", "tux", "joe"])
        #expect(document.strings("/image/users").count == 1)
    }

    // MARK: What removes

    @Test func aRemovedPackageLeavesEverySectionAndIsUninstalled() throws {
        let document = try merged("<packages>\n<remove name=\"nano\"/>\n<remove name=\"ca-certificates\"/>\n</packages>")
        #expect(document.strings("/image/packages[@type='image']/package[@name='nano']").isEmpty)
        #expect(document.strings("/image/packages[@type='uninstall']/package/@name") == ["nano", "ca-certificates"])
        #expect(document.strings("/image/packages[@type='uninstall']").count == 1)
    }

    @Test func whatTheBaseBuildDidIsLeftOut() throws {
        let document = try merged("")
        #expect(document.strings("/image/packages/@type") == ["image", "image"])
        #expect(document.strings("//archive").isEmpty)
        #expect(document.strings("/image/packages[@type='image' and not(@profiles)]/package/@name") == ["bash", "nano"])
    }

    // MARK: Conflicts

    @Test(arguments: [
        ("<packages>\n<package name=\"vim\"/>\n<remove name=\"vim\"/>\n</packages>", ":6: <remove name=\"vim\">", "line 5"),
        (
            "<repository alias=\"x\"><source path=\"http://a.example/1\"/></repository>\n<repository alias=\"x\"><source path=\"http://a.example/2\"/></repository>",
            ":5: <repository alias=\"x\">", "line 4"
        ),
        (
            "<users>\n<user name=\"joe\" password=\"a\"/>\n<user name=\"joe\" password=\"b\"/>\n</users>", ":6: <user name=\"joe\">", "line 5"
        ),
        ("<preferences>\n<type image=\"iso\"/>\n<type image=\"iso\"/>\n</preferences>", ":6: <type image=\"iso\">", "line 5"),
        (
            "<preferences>\n<version>1.0.0</version>\n</preferences>\n<preferences>\n<version>2.0.0</version>\n</preferences>", ":8: <version>",
            "line 5"
        ),
    ])
    func aConflictTheRulesCannotSettleNamesTheElementAndFile(body: String, element: String, other: String) {
        let message = mergeError(body)
        #expect(message.contains(derivedPath + element), "\(message)")
        #expect(message.contains(other), "\(message)")
    }

    @Test func preferencesNeedPreferencesInTheBaseThatAreNotForAProfile() throws {
        let base = workspace.file("profiled.xml")
        try Data(
            """
            <image schemaversion="7.5" name="b"><description type="system"><author>a</author><contact>c</contact><specification>s</specification></description>
            <preferences profiles="one"><version>1.0.0</version><packagemanager>apt</packagemanager><type image="tbz"/></preferences>
            <profiles><profile name="one" description="one"/></profiles></image>
            """.utf8
        ).write(to: URL(fileURLWithPath: base))
        let message = mergeError("<preferences>\n<version>2.0.0</version>\n</preferences>", base: base)
        #expect(message.contains(derivedPath + ":4: <preferences>"), "\(message)")
        #expect(message.contains(base), "\(message)")
    }

    @Test func aStoredDescriptionThatIsNoKiwiDescriptionIsNamed() throws {
        let base = workspace.file("not-kiwi.xml")
        try Data("<derived><base stash=\"x\"/></derived>".utf8).write(to: URL(fileURLWithPath: base))
        let message = mergeError("", base: base)
        #expect(message.contains(base + ": "), "\(message)")
        #expect(message.contains("<image>"), "\(message)")
    }

    // MARK: KIWI's schema

    @Test(.enabled(if: FileManager.default.fileExists(atPath: BoxDescriptionSchemaTests.kiwiSchema)))
    func mergedDescriptionsAreValidForKiwi() throws {
        let tinyDebian = repositoryRoot + "/Tests/Fixtures/tiny-debian/config.kiwi"
        let slowTier = try DerivedDescription(file: repositoryRoot + "/Tests/Fixtures/tiny-debian-derived/config.xml")
        let mergedTiny = try slowTier.merge(into: try Data(contentsOf: URL(fileURLWithPath: tinyDebian)), basePath: tinyDebian)
        #expect(mergedTiny.string("/image/preferences/version") == "1.1.0")
        #expect(mergedTiny.strings("/image/packages[@type='image']/package/@name") == ["bash", "less"])
        #expect(mergedTiny.strings("/image/packages[@type='uninstall']/package/@name") == ["ca-certificates"])
        #expect(mergedTiny.strings("/image/packages[@type='bootstrap']").isEmpty)

        let everything = try merged(
            """
            <description><specification>Everything at once</specification></description>
            <preferences><version>1.1.0</version><keytable>de</keytable><type image="oem" filesystem="xfs"/></preferences>
            <repository alias="extra" type="apt-deb" distribution="bookworm" components="main"><source path="http://a.example/debian"/></repository>
            <packages><package name="vim"/><remove name="nano"/></packages>
            <users><user name="joe" password="x" pwdformat="plain" groups="users"/></users>
            """, attributes: " name=\"everything\"")
        for document in [mergedTiny, everything] {
            let path = workspace.file("merged-\(UUID().uuidString.prefix(4)).xml")
            try Data(document.serialized().utf8).write(to: URL(fileURLWithPath: path))
            let problems = try XMLDocument(contentsOfFile: path).relaxNGProblems(schemaPath: BoxDescriptionSchemaTests.kiwiSchema)
            #expect(problems.isEmpty, "\(problems.joined(separator: "; "))\n\(document.serialized())")
        }
    }
}
