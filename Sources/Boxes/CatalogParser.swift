import BoxstackCore
import Foundation
import Yams

/// Reads a catalog file through Yams' node tree, so every error can name the file, the line and the field.
struct CatalogParser {
    let path: String

    func parse(_ yaml: String) throws -> [BoxDefinition] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw syntaxError(error)
        }
        guard let root else { throw fail(line: 1, field: "boxes", "the file is empty; it needs a 'boxes:' list") }
        let top = try mapping(root, field: "(top level)", allowed: ["boxes"])
        guard let boxesNode = top["boxes"] else {
            throw fail(root, field: "boxes", "the catalog needs a 'boxes:' list")
        }
        guard let list = boxesNode.sequence else { throw fail(boxesNode, field: "boxes", "expected a list of boxes") }
        var seen: [String: Int] = [:]
        var boxes: [BoxDefinition] = []
        for (index, node) in list.enumerated() {
            let box = try parseBox(node, field: "boxes[\(index)]")
            if let earlier = seen[box.name] {
                throw fail(node, field: "boxes[\(index)].name", "the box \(box.name) is already defined at line \(earlier)")
            }
            seen[box.name] = node.mark?.line ?? 0
            boxes.append(box)
        }
        return boxes
    }

    private func parseBox(_ node: Node, field: String) throws -> BoxDefinition {
        let keys: Set = ["name", "description", "memory", "cpus", "console", "arch"]
        let fields = try mapping(node, field: field, allowed: keys)
        let name = try string(fields, "name", in: node, field: field)
        guard BoxDefinition.isValidName(name) else {
            throw fail(fields["name"] ?? node, field: "\(field).name", "'\(name)' must be lower-case letters, digits, '.', '_' or '-'")
        }
        let boxField = "\(field) (\(name))"
        let memoryText = try string(fields, "memory", in: node, field: boxField)
        guard let memory = ByteCount.parse(memoryText) else {
            throw fail(fields["memory"] ?? node, field: "\(boxField).memory", "'\(memoryText)' is not a size such as 4G or 2048M")
        }
        let cpusText = try string(fields, "cpus", in: node, field: boxField)
        guard let cpus = Int(cpusText), cpus > 0 else {
            throw fail(fields["cpus"] ?? node, field: "\(boxField).cpus", "'\(cpusText)' is not a positive whole number")
        }
        guard let archNode = fields["arch"] else { throw missing("arch", in: node, field: boxField) }
        let archFields = try mapping(archNode, field: "\(boxField).arch", allowed: nil)
        var architectures: [BoxArchitecture] = []
        for (keyNode, value) in archFields.pairs {
            let arch = keyNode.string ?? ""
            guard ["x86_64", "aarch64"].contains(arch) else {
                throw fail(keyNode, field: "\(boxField).arch.\(arch)", "the architecture must be x86_64 or aarch64")
            }
            architectures.append(try parseArchitecture(value, arch: arch, field: "\(boxField).arch.\(arch)"))
        }
        guard !architectures.isEmpty else { throw fail(archNode, field: "\(boxField).arch", "the box lists no architecture") }
        return BoxDefinition(
            name: name,
            description: try optionalString(fields, "description", field: boxField) ?? "",
            memory: memory, cpus: cpus,
            console: try string(fields, "console", in: node, field: boxField),
            architectures: architectures, catalogPath: path)
    }

    private func parseArchitecture(_ node: Node, arch: String, field: String) throws -> BoxArchitecture {
        let keys: Set = ["source", "kernel", "initrd", "disk", "cmdline", "console"]
        let fields = try mapping(node, field: field, allowed: keys)
        // No source: a box nobody publishes yet, which its users build themselves.
        let sourceText = try optionalString(fields, "source", field: field) ?? ""
        var source: BoxSource?
        if !sourceText.isEmpty {
            do {
                source = try BoxSource.parse(sourceText, relativeTo: (path as NSString).deletingLastPathComponent)
            } catch let error as BoxstackError {
                throw fail(fields["source"] ?? node, field: "\(field).source", error.message)
            }
        }
        var cmdline: [String] = []
        if let cmdlineNode = fields["cmdline"] {
            guard let items = cmdlineNode.sequence else {
                throw fail(cmdlineNode, field: "\(field).cmdline", "expected a list such as [root=/dev/vda, rw]")
            }
            for (index, item) in items.enumerated() {
                guard let text = item.scalar?.string else {
                    throw fail(item, field: "\(field).cmdline[\(index)]", "expected a kernel argument")
                }
                guard !text.hasPrefix("console=") else {
                    throw fail(item, field: "\(field).cmdline[\(index)]", "set the console with 'console:', not in cmdline")
                }
                cmdline.append(text)
            }
        }
        return BoxArchitecture(
            arch: arch, source: source, sourceText: sourceText,
            kernel: try fileName(fields, "kernel", in: node, field: field),
            initrd: try fileName(fields, "initrd", in: node, field: field),
            disk: try fileName(fields, "disk", in: node, field: field),
            cmdline: cmdline,
            console: try optionalString(fields, "console", field: field))
    }

    // MARK: - Node access with positions

    /// A mapping's entries with their key nodes kept, so unknown keys can be reported where they are.
    private struct Fields {
        var pairs: [(key: Node, value: Node)]
        subscript(_ key: String) -> Node? { pairs.first { $0.key.string == key }?.value }
    }

    private func mapping(_ node: Node, field: String, allowed: Set<String>?) throws -> Fields {
        guard let mapping = node.mapping else { throw fail(node, field: field, "expected a mapping of 'key: value' lines") }
        var seen = Set<String>()
        for (key, _) in mapping {
            let name = key.string ?? ""
            if let allowed, !allowed.contains(name) {
                let known = allowed.sorted().joined(separator: ", ")
                throw fail(key, field: "\(field).\(name)", "unknown field (known fields: \(known))")
            }
            guard seen.insert(name).inserted else { throw fail(key, field: "\(field).\(name)", "the field is given twice") }
        }
        return Fields(pairs: mapping.map { ($0.key, $0.value) })
    }

    private func string(_ fields: Fields, _ key: String, in node: Node, field: String) throws -> String {
        guard let text = try optionalString(fields, key, field: field) else { throw missing(key, in: node, field: field) }
        return text
    }

    private func optionalString(_ fields: Fields, _ key: String, field: String) throws -> String? {
        guard let value = fields[key] else { return nil }
        guard let scalar = value.scalar, !scalar.string.isEmpty else {
            throw fail(value, field: "\(field).\(key)", "expected a single non-empty value")
        }
        return scalar.string
    }

    private func fileName(_ fields: Fields, _ key: String, in node: Node, field: String) throws -> String {
        let name = try string(fields, key, in: node, field: field)
        guard !name.contains("/"), !name.hasPrefix("."), name != "state.json" else {
            throw fail(fields[key] ?? node, field: "\(field).\(key)", "'\(name)' must be a plain file name inside the source")
        }
        return name
    }

    private func missing(_ key: String, in node: Node, field: String) -> BoxstackError {
        fail(node, field: "\(field).\(key)", "the required field is missing")
    }

    private func fail(_ node: Node, field: String, _ problem: String) -> BoxstackError {
        fail(line: node.mark?.line ?? 1, field: field, problem)
    }

    private func fail(line: Int, field: String, _ problem: String) -> BoxstackError {
        BoxstackError(.invalidData, "\(path), line \(line), field \(field): \(problem).")
    }

    private func syntaxError(_ error: YamlError) -> BoxstackError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let near = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            return BoxstackError(.invalidData, "\(path), line \(mark.line): invalid YAML: \(problem)\(near).")
        default:
            return BoxstackError(.invalidData, "\(path) is not valid YAML: \(error).")
        }
    }
}
