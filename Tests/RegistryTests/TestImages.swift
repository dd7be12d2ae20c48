import BoxstackCore
import Foundation
import OCI
import TestSupport

/// Builds small real images with umoci, and looks at layouts and registries the way a user would.
enum TestImages {
    /// Adds `tag` to the layout at `path` (created with `umoci init` when missing), with one layer per
    /// element of `layers`, each a map of relative file path to content, inserted under `/`.
    @discardableResult
    static func make(at path: String, tag: String, layers: [[String: Data]]) throws -> OCILayout {
        if !OCILayout.exists(at: path) { try Subprocess.run(["umoci", "init", "--layout", path]).check() }
        try Subprocess.run(["umoci", "new", "--image", "\(path):\(tag)"]).check()
        let scratch = try TemporaryDirectory("boxstack-image-src")
        for (number, files) in layers.enumerated() {
            let source = scratch.file("layer\(number)")
            for (relative, content) in files {
                let file = source + "/" + relative
                try FileManager.default.makeDirectory((file as NSString).deletingLastPathComponent)
                try content.write(to: URL(fileURLWithPath: file))
            }
            try Subprocess.run(["umoci", "insert", "--rootless", "--image", "\(path):\(tag)", source, "/"]).check()
        }
        return try OCILayout(opening: path)
    }

    /// `count` random bytes (incompressible, so a gzip layer is about as large).
    static func randomBytes(_ count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        var data = Data(capacity: count + 8)
        while data.count < count {
            withUnsafeBytes(of: generator.next() as UInt64) { data.append(contentsOf: $0) }
        }
        return data.prefix(count)
    }

    /// Every file under `path` with its size, plus index.json's bytes: what a user could see change.
    static func snapshot(_ path: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return result }
        while let relative = enumerator.nextObject() as? String {
            let full = path + "/" + relative
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
            if isDirectory.boolValue { continue }
            result[relative] = relative == "index.json" ? FileManager.default.contents(atPath: full) : Data()
        }
        return result
    }

    /// `skopeo inspect` of a registry image, as parsed JSON.
    static func skopeoInspect(_ reference: String, credentials: String? = nil, raw: Bool = false) throws -> Data {
        var arguments = ["skopeo", "inspect", "--tls-verify=false"]
        if raw { arguments.append("--raw") }
        if let credentials { arguments += ["--creds", credentials] }
        return try Subprocess.run(arguments + ["docker://\(reference)"]).check().standardOutput
    }
}
