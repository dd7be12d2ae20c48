import Foundation
import TestSupport
import Testing
import XML

/// The KIWI descriptions under Boxes/ and the test fixtures' whole descriptions must be valid for the
/// KIWI that builds them: a slow-tier build should not be the first to find a typo.
@Suite struct BoxDescriptionSchemaTests {
    /// KIWI's own RELAX NG schema, as Debian's kiwi package installs it.
    static let kiwiSchema = "/usr/lib/python3/dist-packages/kiwi/schema/kiwi.rng"

    static var boxDescriptions: [String] {
        let boxes = repositoryRoot + "/Boxes"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: boxes)) ?? []
        return names.sorted().map { "\(boxes)/\($0)/config.kiwi" }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// The `config.kiwi` of each fixture (derived descriptions are `config.xml`, checked against
    /// Schemas/derived.rng by their own tests).
    static var fixtureDescriptions: [String] {
        let fixtures = repositoryRoot + "/Tests/Fixtures"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtures)) ?? []
        return names.sorted().map { "\(fixtures)/\($0)/config.kiwi" }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    @Test func everyKiwiBoxHasADescription() {
        let described = Set(Self.boxDescriptions.map { URL(fileURLWithPath: $0).deletingLastPathComponent().lastPathComponent })
        #expect(described.isSuperset(of: ["leap", "tumbleweed", "fedora", "ubuntu"]))
    }

    @Test(arguments: boxDescriptions)
    func descriptionValidatesAgainstKiwiSchema(path: String) throws {
        let problems = try XMLDocument(contentsOfFile: path).relaxNGProblems(schemaPath: Self.kiwiSchema)
        #expect(problems.isEmpty, "\(path): \(problems.joined(separator: "; "))")
    }

    @Test(arguments: fixtureDescriptions)
    func fixtureValidatesAgainstKiwiSchema(path: String) throws {
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
