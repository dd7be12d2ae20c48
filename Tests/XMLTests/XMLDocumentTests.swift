import Foundation
import TestSupport
import Testing
import XML

@Suite struct XMLTests {
    @Test func buildsEscapedDocumentsAndReadsThemBack() throws {
        let document = XMLDocument(rootName: "domain")
        document.root?.setAttribute("type", "qemu")
        document.root?.append("name", text: "a<b&c")
        let reparsed = try XMLDocument(data: Data(document.serialized().utf8), name: "built.xml")
        #expect(reparsed.string("/domain/name") == "a<b&c")
        #expect(reparsed.string("/domain/@type") == "qemu")
    }

    @Test func malformedXMLNamesFileAndLine() {
        #expect {
            _ = try XMLDocument(data: Data("<a>\n<b></a>".utf8), name: "bad.xml")
        } throws: { error in
            "\(error)".contains("bad.xml:2")
        }
    }

    @Test func xpathReadsEveryMatchInDocumentOrder() throws {
        let document = try XMLDocument(data: Data("<image><packages><package name='a'/><package name='b'/></packages></image>".utf8), name: "x.xml")
        #expect(document.strings("//package/@name") == ["a", "b"])
        #expect(document.string("/image/missing") == nil)
    }

    @Test func relaxNGProblemsNameFileAndLine() throws {
        let directory = try TemporaryDirectory("xml")
        let schema = directory.file("schema.rng")
        try Data(
            """
            <element name="image" xmlns="http://relaxng.org/ns/structure/1.0"><attribute name="name"/></element>
            """.utf8
        ).write(to: URL(fileURLWithPath: schema))
        let valid = try XMLDocument(data: Data("<image name='x'/>".utf8), name: "valid.xml")
        #expect(try valid.relaxNGProblems(schemaPath: schema).isEmpty)
        let path = directory.file("invalid.xml")
        try Data("<image\n  colour='red'/>".utf8).write(to: URL(fileURLWithPath: path))
        let problems = try XMLDocument(contentsOfFile: path).relaxNGProblems(schemaPath: schema)
        #expect(!problems.isEmpty)
        #expect(problems.contains { $0.contains(path + ":") }, "\(problems)")
    }
}
