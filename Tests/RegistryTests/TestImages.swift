import BoxstackCore
import Foundation
import OCI
import Registry
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

    /// Adds `tag` to the layout at `path` (created when missing): an image whose one layer is `layerSize`
    /// random bytes. Registries and transfers never look inside layers, so it needs no umoci.
    @discardableResult
    static func makeRaw(at path: String, tag: String, layerSize: Int = 40_000) throws -> OCILayout {
        let layout = try OCILayout.create(at: path)
        let config = try layout.writeBlob(
            OCIJSON.encode(ImageConfig(architecture: ImageTransfer.hostPlatform.architecture)), mediaType: MediaType.imageConfig)
        let layer = try layout.writeBlob(randomBytes(layerSize), mediaType: MediaType.layerTar)
        let manifest = try layout.writeBlob(
            OCIJSON.encode(Manifest(config: config, layers: [layer])), mediaType: MediaType.imageManifest)
        try layout.setTag(tag, to: manifest)
        return layout
    }

    /// Tags as `tag` a chain of `depth` image indexes above the image tagged `image`, each listing the
    /// next for this machine's platform; returns the indexes, outermost first.
    @discardableResult
    static func nestIndexes(in layout: OCILayout, image: String, depth: Int, tag: String) throws -> [Descriptor] {
        guard var inner = try layout.descriptor(tag: image) else {
            throw BoxstackError(.notFound, "\(layout.path) has no image tagged \(image).")
        }
        inner.annotations = nil
        var chain: [Descriptor] = []
        for _ in 0..<depth {
            inner.platform = ImageTransfer.hostPlatform
            inner = try layout.writeBlob(OCIJSON.encode(ImageIndex(manifests: [inner])), mediaType: MediaType.imageIndex)
            chain.insert(inner, at: 0)
        }
        try layout.setTag(tag, to: inner)
        return chain
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
