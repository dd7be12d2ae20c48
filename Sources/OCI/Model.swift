import BoxstackCore
import Foundation

/// Media types of the OCI image spec and the Docker v2 schema 2 types registries still serve.
public enum MediaType {
    /// An OCI image manifest.
    public static let imageManifest = "application/vnd.oci.image.manifest.v1+json"
    /// An OCI image index (a multi-platform list of manifests).
    public static let imageIndex = "application/vnd.oci.image.index.v1+json"
    /// An OCI image configuration.
    public static let imageConfig = "application/vnd.oci.image.config.v1+json"
    /// An uncompressed OCI layer.
    public static let layerTar = "application/vnd.oci.image.layer.v1.tar"
    /// A gzip-compressed OCI layer.
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    /// A zstd-compressed OCI layer.
    public static let layerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    /// The OCI empty descriptor's content, `{}`.
    public static let emptyJSON = "application/vnd.oci.empty.v1+json"

    /// A Docker v2 schema 2 image manifest.
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    /// A Docker manifest list (the Docker counterpart of an image index).
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// A Docker image configuration.
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    /// A gzip-compressed Docker layer.
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    /// A Docker layer that clients must not push (foreign, e.g. Windows base layers).
    public static let dockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

    /// Media types that name a single-image manifest.
    public static let manifests: Set<String> = [imageManifest, dockerManifest]
    /// Media types that name a list of manifests.
    public static let indexes: Set<String> = [imageIndex, dockerManifestList]
    /// Every media type a registry `Accept` header should list when fetching a manifest by tag.
    public static let acceptedManifests: [String] = [imageManifest, imageIndex, dockerManifest, dockerManifestList]

    /// The compression of a layer media type, or nil when the media type is not a known layer.
    public static func layerCompression(_ mediaType: String) -> LayerCompression? {
        switch mediaType {
        case layerTar, "application/vnd.docker.image.rootfs.diff.tar": return LayerCompression.none
        case layerGzip, dockerLayerGzip, dockerForeignLayerGzip: return .gzip
        case layerZstd: return .zstd
        default: return nil
        }
    }
}

/// How a layer blob is compressed.
public enum LayerCompression: String, Sendable, Codable, CaseIterable {
    case none, gzip, zstd

    /// The OCI layer media type for this compression.
    public var mediaType: String {
        switch self {
        case .none: return MediaType.layerTar
        case .gzip: return MediaType.layerGzip
        case .zstd: return MediaType.layerZstd
        }
    }
}

/// Well-known annotation keys.
public enum AnnotationKey {
    /// The tag of a manifest in an image layout's index.json.
    public static let refName = "org.opencontainers.image.ref.name"
    /// Creation time, RFC 3339.
    public static let created = "org.opencontainers.image.created"
    /// The human-readable title.
    public static let title = "org.opencontainers.image.title"
    /// The version of the packaged software.
    public static let version = "org.opencontainers.image.version"
    /// The author(s).
    public static let authors = "org.opencontainers.image.authors"
    /// A human-readable description.
    public static let description = "org.opencontainers.image.description"
}

/// The platform a manifest in an index is built for.
public struct Platform: Codable, Hashable, Sendable {
    /// CPU architecture in Go's naming (`amd64`, `arm64`).
    public var architecture: String
    /// Operating system in Go's naming (`linux`).
    public var os: String
    /// CPU variant (`v8` for arm64), if any.
    public var variant: String?
    /// Operating system version, if any.
    public var osVersion: String?
    /// Required operating system features, if any.
    public var osFeatures: [String]?

    /// A platform for `architecture` and `os`.
    public init(architecture: String, os: String = "linux", variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    /// The Go architecture name of a `uname -m` machine name (`x86_64` -> `amd64`, `aarch64` -> `arm64`).
    public static func goArchitecture(_ machine: String) -> String {
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        case "armv7l": return "arm"
        case "i686", "i386": return "386"
        default: return machine
        }
    }

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }
}

/// A reference to a blob: its media type, digest and size, plus optional annotations.
public struct Descriptor: Codable, Hashable, Sendable {
    /// The media type of the referenced content.
    public var mediaType: String
    /// The content's digest.
    public var digest: ContentDigest
    /// The content's size in bytes.
    public var size: Int64
    /// Alternative download locations (foreign layers).
    public var urls: [String]?
    /// Free-form annotations; in an image layout's index.json this holds the tag.
    public var annotations: [String: String]?
    /// The platform, for manifests listed in an index.
    public var platform: Platform?
    /// The artifact type, for artifact manifests.
    public var artifactType: String?

    /// A descriptor of `size` bytes with `digest`.
    public init(
        mediaType: String, digest: ContentDigest, size: Int64, annotations: [String: String]? = nil,
        platform: Platform? = nil
    ) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }

    /// The tag recorded in `org.opencontainers.image.ref.name`, if any.
    public var refName: String? { annotations?[AnnotationKey.refName] }
}

/// An image manifest (OCI, or Docker schema 2, which has the same shape).
public struct Manifest: Codable, Hashable, Sendable {
    /// Always 2.
    public var schemaVersion: Int
    /// The manifest's own media type; optional in OCI, required by Docker.
    public var mediaType: String?
    /// The artifact type, for artifact manifests.
    public var artifactType: String?
    /// The image configuration blob.
    public var config: Descriptor
    /// The layers, base first.
    public var layers: [Descriptor]
    /// The manifest this one refers to (referrers API), if any.
    public var subject: Descriptor?
    /// Free-form annotations.
    public var annotations: [String: String]?

    /// An OCI image manifest.
    public init(config: Descriptor, layers: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = MediaType.imageManifest
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// An image index: a list of manifests (one per platform, or one per tag in an image layout).
public struct ImageIndex: Codable, Hashable, Sendable {
    /// Always 2.
    public var schemaVersion: Int
    /// The index's own media type.
    public var mediaType: String?
    /// The listed manifests (or nested indexes).
    public var manifests: [Descriptor]
    /// Free-form annotations.
    public var annotations: [String: String]?

    /// An OCI image index listing `manifests`.
    public init(manifests: [Descriptor] = [], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = MediaType.imageIndex
        self.manifests = manifests
        self.annotations = annotations
    }

    /// How many indexes deep a manifest is looked for: real images use one, rarely two, and the limit
    /// also ends a chain of indexes that loops.
    public static let maximumNestingDepth = 4

    /// The error for the index `digest` in `place` (a layout or repository), which lies below
    /// `maximumNestingDepth` other indexes.
    public static func nestedTooDeep(_ digest: ContentDigest, in place: String) -> BoxstackError {
        BoxstackError(
            .invalidData,
            "the image index \(digest) in \(place) is nested below \(maximumNestingDepth) other indexes; boxstack follows at most \(maximumNestingDepth) levels of indexes."
        )
    }
}

/// The image configuration: platform, runtime defaults, labels, layer diffIDs and history.
public struct ImageConfig: Codable, Hashable, Sendable {
    /// Creation time, RFC 3339.
    public var created: String?
    /// The image's author.
    public var author: String?
    /// CPU architecture in Go's naming.
    public var architecture: String
    /// Operating system (`linux`).
    public var os: String
    /// CPU variant, if any.
    public var variant: String?
    /// Runtime defaults and labels.
    public var config: RuntimeConfig?
    /// The uncompressed digests of the layers, base first.
    public var rootfs: RootFS
    /// One entry per layer (plus empty-layer entries), base first.
    public var history: [History]?

    /// A configuration with no layers yet.
    public init(architecture: String, os: String = "linux", created: String? = nil, author: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.created = created
        self.author = author
        rootfs = RootFS(diffIDs: [])
    }

    /// Runtime defaults a container engine applies; boxstack only sets `Labels`.
    public struct RuntimeConfig: Codable, Hashable, Sendable {
        public var user: String?
        public var env: [String]?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var workingDir: String?
        public var labels: [String: String]?
        public var stopSignal: String?

        /// Runtime defaults holding only `labels`.
        public init(labels: [String: String]? = nil) { self.labels = labels }

        enum CodingKeys: String, CodingKey {
            case user = "User"
            case env = "Env"
            case entrypoint = "Entrypoint"
            case cmd = "Cmd"
            case workingDir = "WorkingDir"
            case labels = "Labels"
            case stopSignal = "StopSignal"
        }
    }

    /// The layer chain: always type `layers`, with one diffID (sha256 of the uncompressed tar) per layer.
    public struct RootFS: Codable, Hashable, Sendable {
        public var type: String
        public var diffIDs: [ContentDigest]

        /// A `layers` root file system with `diffIDs`.
        public init(diffIDs: [ContentDigest]) {
            type = "layers"
            self.diffIDs = diffIDs
        }

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    /// How one layer was made.
    public struct History: Codable, Hashable, Sendable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        /// True for history entries that did not produce a layer.
        public var emptyLayer: Bool?

        /// A history entry for a layer.
        public init(created: String?, createdBy: String?, author: String? = nil, comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.author = author
            self.comment = comment
            self.emptyLayer = emptyLayer
        }

        enum CodingKeys: String, CodingKey {
            case created, author, comment
            case createdBy = "created_by"
            case emptyLayer = "empty_layer"
        }
    }

    /// The labels in `config.Labels` (empty when there are none).
    public var labels: [String: String] {
        get { config?.labels ?? [:] }
        set {
            var runtime = config ?? RuntimeConfig()
            runtime.labels = newValue.isEmpty ? nil : newValue
            config = runtime
        }
    }
}

/// Canonical JSON for OCI documents: sorted keys, no escaped slashes, so equal content gives equal digests.
public enum OCIJSON {
    /// Encodes `value` canonically.
    public static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// Decodes `type` from `data`; `what` names the document in the error.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw BoxstackError(.invalidData, "\(what) is not a valid OCI document: \(Terminal.sanitized("\(error)")).", cause: error)
        }
    }

    /// The current time in RFC 3339 with UTC and seconds, as OCI `created` fields use.
    public static func timestamp(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// Parses an RFC 3339 timestamp, with or without fractional seconds.
    public static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
