import BoxstackCore
import CLibXML2
import Foundation

/// A libxml2 document: parsed from a file or data, or built element by element.
///
/// Used for KIWI descriptions (reading, XPath, schema validation) and libvirt domain XML (building),
/// so that escaping and well-formedness are libxml2's job, not ours.
public final class XMLDocument: @unchecked Sendable {
    let pointer: xmlDocPtr

    /// Parses `data`; `name` is used in error messages (a file path, usually). `droppingBlankText`
    /// drops the whitespace between elements, so that `serialized()` indents a document whose
    /// elements were moved about as if it had been written that way.
    public init(data: Data, name: String, droppingBlankText: Bool = false) throws {
        XMLDocument.initializeLibrary
        let errors = XMLErrorCollector()
        var options = XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
        if droppingBlankText { options |= XML_PARSE_NOBLANKS.rawValue }
        let parsed: xmlDocPtr? = errors.collecting {
            data.withUnsafeBytes { buffer in
                xmlReadMemory(buffer.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(buffer.count), name, nil, Int32(options))
            }
        }
        guard let parsed else {
            throw BoxstackError(.invalidData, "\(name) is not well-formed XML: \(errors.summary).")
        }
        pointer = parsed
    }

    /// Reads and parses the file at `path`.
    public convenience init(contentsOfFile path: String, droppingBlankText: Bool = false) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BoxstackError(.notFound, "cannot read \(path).")
        }
        try self.init(data: data, name: path, droppingBlankText: droppingBlankText)
    }

    /// A new document whose root element is `rootName`.
    public init(rootName: String) {
        XMLDocument.initializeLibrary
        pointer = xmlNewDoc("1.0")
        let node = xmlNewDocNode(pointer, nil, rootName, nil)
        xmlDocSetRootElement(pointer, node)
    }

    deinit { xmlFreeDoc(pointer) }

    public var root: XMLElement? {
        guard let node = xmlDocGetRootElement(pointer) else { return nil }
        return XMLElement(node: node, document: self)
    }

    /// The text of every node that `expression` selects (elements give their content, attributes their value).
    public func strings(_ expression: String) -> [String] {
        guard let context = xmlXPathNewContext(pointer) else { return [] }
        defer { xmlXPathFreeContext(context) }
        guard let result = xmlXPathEvalExpression(expression, context) else { return [] }
        defer { xmlXPathFreeObject(result) }
        guard let set = result.pointee.nodesetval else { return [] }
        var values: [String] = []
        for index in 0..<Int(set.pointee.nodeNr) {
            guard let node = set.pointee.nodeTab[index], let content = xmlNodeGetContent(node) else { continue }
            values.append(String(cString: content))
            boxstack_xml_free(content)
        }
        return values
    }

    /// The first string `expression` selects.
    public func string(_ expression: String) -> String? { strings(expression).first }

    /// The document as text, indented.
    public func serialized() -> String {
        var buffer: UnsafeMutablePointer<xmlChar>?
        var size: Int32 = 0
        xmlDocDumpFormatMemoryEnc(pointer, &buffer, &size, "UTF-8", 1)
        guard let buffer else { return "" }
        defer { boxstack_xml_free(buffer) }
        return String(cString: buffer)
    }

    /// Validates against a RELAX NG schema file; returns the problems found, each with its line.
    public func relaxNGProblems(schemaPath: String) throws -> [String] {
        guard let parserContext = xmlRelaxNGNewParserCtxt(schemaPath) else {
            throw BoxstackError(.notFound, "cannot open the schema \(schemaPath).")
        }
        defer { xmlRelaxNGFreeParserCtxt(parserContext) }
        let errors = XMLErrorCollector()
        guard let schema = errors.collecting({ xmlRelaxNGParse(parserContext) }) else {
            throw BoxstackError(.invalidData, "the schema \(schemaPath) does not parse: \(errors.summary).")
        }
        defer { xmlRelaxNGFree(schema) }
        guard let validation = xmlRelaxNGNewValidCtxt(schema) else { return ["cannot create a validation context"] }
        defer { xmlRelaxNGFreeValidCtxt(validation) }
        let problems = XMLErrorCollector()
        let status = problems.collecting { xmlRelaxNGValidateDoc(validation, pointer) }
        if status == 0 { return [] }
        return problems.messages.isEmpty ? ["invalid (status \(status))"] : problems.messages
    }

    private static let initializeLibrary: Void = { xmlInitParser() }()
}

/// An element of an `XMLDocument`; valid while its document lives (it keeps it alive).
public struct XMLElement: @unchecked Sendable {
    let node: xmlNodePtr
    let document: XMLDocument

    public var name: String { String(cString: node.pointee.name) }

    public var text: String {
        guard let content = xmlNodeGetContent(node) else { return "" }
        defer { boxstack_xml_free(content) }
        return String(cString: content)
    }

    /// The line the element starts on in the parsed file.
    public var line: Int { Int(xmlGetLineNo(node)) }

    public func attribute(_ name: String) -> String? {
        guard let value = xmlGetProp(node, name) else { return nil }
        defer { boxstack_xml_free(value) }
        return String(cString: value)
    }

    public var children: [XMLElement] {
        var result: [XMLElement] = []
        var child = node.pointee.children
        while let current = child {
            if current.pointee.type == XML_ELEMENT_NODE { result.append(XMLElement(node: current, document: document)) }
            child = current.pointee.next
        }
        return result
    }

    public func children(named name: String) -> [XMLElement] { children.filter { $0.name == name } }

    /// Appends a child element; `text` is escaped by libxml2.
    @discardableResult
    public func append(
        _ name: String, text: String? = nil, attributes: KeyValuePairs<String, String> = [:], namespacePrefix: String? = nil
    ) -> XMLElement {
        let namespace = namespacePrefix.flatMap { xmlSearchNs(document.pointer, node, $0) }
        let child = xmlNewChild(node, namespace, name, nil)!
        if let text { xmlNodeAddContent(child, text) }
        for (key, value) in attributes { xmlNewProp(child, key, value) }
        return XMLElement(node: child, document: document)
    }

    public func setAttribute(_ name: String, _ value: String) { xmlSetProp(node, name, value) }

    public func removeAttribute(_ name: String) { xmlUnsetProp(node, name) }

    /// The element this one is a child of; nil for the root element.
    public var parent: XMLElement? {
        guard let parent = node.pointee.parent, parent.pointee.type == XML_ELEMENT_NODE else { return nil }
        return XMLElement(node: parent, document: document)
    }

    /// Appends a deep copy of `element`, which may belong to another document, as the last child.
    @discardableResult
    public func append(copyOf element: XMLElement) -> XMLElement {
        XMLElement(node: xmlAddChild(node, copy(element))!, document: document)
    }

    /// Inserts a deep copy of `element`, which may belong to another document, right after this element.
    @discardableResult
    public func insertAfter(copyOf element: XMLElement) -> XMLElement {
        XMLElement(node: xmlAddNextSibling(node, copy(element))!, document: document)
    }

    /// Puts a deep copy of `element`, which may belong to another document, in this element's place
    /// and frees this element: neither it nor elements below it may be used afterwards.
    @discardableResult
    public func replace(withCopyOf element: XMLElement) -> XMLElement {
        let replacement = copy(element)
        xmlReplaceNode(node, replacement)
        xmlFreeNode(node)
        return XMLElement(node: replacement, document: document)
    }

    /// Takes this element out of its document and frees it: neither it nor elements below it may be used afterwards.
    public func remove() {
        xmlUnlinkNode(node)
        xmlFreeNode(node)
    }

    private func copy(_ element: XMLElement) -> xmlNodePtr { xmlDocCopyNode(element.node, document.pointer, 1) }

    /// Declares `xmlns:prefix="href"` on this element.
    public func declareNamespace(prefix: String, href: String) { xmlNewNs(node, href, prefix) }
}

/// Collects libxml2's structured errors raised while `body` runs.
final class XMLErrorCollector: @unchecked Sendable {
    private(set) var messages: [String] = []

    var summary: String { messages.first ?? "unknown error" }

    func collecting<T>(_ body: () -> T) -> T {
        let context = Unmanaged.passUnretained(self).toOpaque()
        xmlSetStructuredErrorFunc(context) { context, error in
            guard let context, let error else { return }
            let collector = Unmanaged<XMLErrorCollector>.fromOpaque(context).takeUnretainedValue()
            let message =
                error.pointee.message.map { String(cString: $0) }?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "error"
            let file = error.pointee.file.map { String(cString: $0) }
            let line = error.pointee.line
            var parts = [file.map { line > 0 ? "\($0):\(line)" : $0 } ?? (line > 0 ? "line \(line)" : nil)].compactMap { $0 }
            // Validation errors carry the element they are about.
            if let node = error.pointee.node?.assumingMemoryBound(to: xmlNode.self), node.pointee.type == XML_ELEMENT_NODE {
                parts.append("<\(String(cString: node.pointee.name))>")
            }
            collector.messages.append((parts + [message]).joined(separator: ": "))
        }
        defer { xmlSetStructuredErrorFunc(nil, nil) }
        return body()
    }
}
