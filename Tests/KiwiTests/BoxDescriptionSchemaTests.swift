import Foundation
import TestSupport
import Testing
import XML

/// The KIWI descriptions under Boxes/ and the test fixtures' whole descriptions must be valid for the
/// KIWI that builds them: a slow-tier build should not be the first to find a typo.
@Suite struct BoxDescriptionSchemaTests {
    /// KIWI's own RELAX NG schema, as Debian's kiwi package installs it.
    static let kiwiSchema = "/usr/lib/python3/dist-packages/kiwi/schema/kiwi.rng"

    /// The `config.kiwi` of each directory below `directory` of the repository.
    static func descriptions(under directory: String) -> [String] {
        let parent = repositoryRoot + "/" + directory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        return names.sorted().map { "\(parent)/\($0)/config.kiwi" }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    static var boxDescriptions: [String] { descriptions(under: "Boxes") }
    /// Derived descriptions are `config.xml`, checked against Schemas/derived.rng by their own tests.
    static var fixtureDescriptions: [String] { descriptions(under: "Tests/Fixtures") }

    @Test func everyKiwiBoxHasADescription() {
        let described = Set(Self.boxDescriptions.map { URL(fileURLWithPath: $0).deletingLastPathComponent().lastPathComponent })
        #expect(described.isSuperset(of: ["leap", "tumbleweed", "fedora", "ubuntu"]))
    }

    @Test(arguments: boxDescriptions + fixtureDescriptions)
    func descriptionValidatesAgainstKiwiSchema(path: String) throws {
        let problems = try XMLDocument(contentsOfFile: path).relaxNGProblems(schemaPath: Self.kiwiSchema)
        #expect(problems.isEmpty, "\(path): \(problems.joined(separator: "; "))")
    }

    @Test func brokenDescriptionIsRejectedWithItsLine() throws {
        let workspace = try TemporaryDirectory("box-schema")
        let original = try String(contentsOfFile: repositoryRoot + "/Boxes/leap/config.kiwi", encoding: .utf8)
        let lines = original.components(separatedBy: "\n")
        let brokenLine = try #require(lines.firstIndex { $0.contains("<packagemanager>") }) + 1
        let broken = original.replacingOccurrences(
            of: "<packagemanager>zypper</packagemanager>", with: "<packagemanager>emerge</packagemanager>")
        try #require(broken != original)
        let path = workspace.file("config.kiwi")
        try broken.write(toFile: path, atomically: true, encoding: .utf8)

        let problems = try XMLDocument(contentsOfFile: path).relaxNGProblems(schemaPath: Self.kiwiSchema)
        #expect(!problems.isEmpty)
        #expect(problems.contains { $0.contains("\(path):\(brokenLine)") }, "\(problems)")
    }
}
