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

    @Test func relaxNGProblemsNameTheElement() throws {
        let directory = try TemporaryDirectory("xml")
        let schema = directory.file("schema.rng")
        try Data(
            """
            <element name="image" xmlns="http://relaxng.org/ns/structure/1.0"><zeroOrMore><element name="package"><empty/></element></zeroOrMore></element>
            """.utf8
        ).write(to: URL(fileURLWithPath: schema))
        let path = directory.file("invalid.xml")
        try Data("<image>\n<package/>\n<archive/>\n</image>".utf8).write(to: URL(fileURLWithPath: path))
        let problems = try XMLDocument(contentsOfFile: path).relaxNGProblems(schemaPath: schema)
        #expect(problems.contains { $0.hasPrefix(path + ":3: <archive>: ") }, "\(problems)")
    }

    @Test func elementsAreCopiedBetweenDocumentsReplacedAndRemoved() throws {
        let document = try XMLDocument(
            data: Data("<image>\n  <a/>\n  <b keep='1' drop='2'/>\n  <c/>\n</image>".utf8), name: "x.xml", droppingBlankText: true)
        let other = try XMLDocument(data: Data("<other><new n='1'><deep/></new><b replaced='yes'/></other>".utf8), name: "y.xml")
        let root = try #require(document.root)
        let (a, b, c) = (root.children[0], root.children[1], root.children[2])
        let copies = try #require(other.root).children
        #expect(a.insertAfter(copyOf: copies[0]).parent?.name == "image")
        root.append(copyOf: copies[0])
        b.removeAttribute("drop")
        #expect(b.attribute("drop") == nil && b.attribute("keep") == "1")
        c.remove()
        let replacement = b.replace(withCopyOf: copies[1])
        #expect(replacement.attribute("replaced") == "yes")
        #expect(root.children.map(\.name) == ["a", "new", "b", "new"])
        #expect(document.strings("//new/deep").count == 2)
        #expect(root.parent == nil)
        // The source document is unchanged, and the result is indented as if written that way.
        #expect(other.root?.children.map(\.name) == ["new", "b"])
        #expect(document.serialized().contains("\n  <new n=\"1\">\n    <deep/>\n  </new>\n"), "\(document.serialized())")
    }
}
