import BoxstackCore
import Foundation
import OCI

/// Writes images made of `RawTar` layers straight into an OCI layout, as a registry or another
/// tool could have left them: no boxstack code checks or cleans what goes in.
public enum RawImage {
    /// Stores `layers` as `layout:tag` (gzip layers with their real diffIDs when `gzip`); returns the layer descriptors.
    @discardableResult
    public static func store(
        _ layers: [[RawTar.Member]], at layoutPath: String, tag: String = "latest", gzip: Bool = false, scratch: String
    ) throws -> [Descriptor] {
        let layout = OCILayout.exists(at: layoutPath) ? try OCILayout(opening: layoutPath) : try OCILayout.create(at: layoutPath)
        var config = ImageConfig(architecture: "amd64")
        var descriptors: [Descriptor] = []
        for members in layers {
            let tar = scratch + "/layer-\(UUID().uuidString).tar"
            let raw = RawTar(members)
            config.rootfs.diffIDs.append(ContentDigest.of(raw.bytes))
            try raw.write(to: tar, gzip: gzip)
            let (digest, size) = try layout.importBlob(fromFile: tar)
            try? FileManager.default.removeItem(atPath: tar)
            descriptors.append(Descriptor(mediaType: gzip ? MediaType.layerGzip : MediaType.layerTar, digest: digest, size: size))
        }
        let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
        let manifest = try layout.writeBlob(
            OCIJSON.encode(Manifest(config: configBlob, layers: descriptors)), mediaType: MediaType.imageManifest)
        try layout.setTag(tag, to: manifest)
        return descriptors
    }
}
