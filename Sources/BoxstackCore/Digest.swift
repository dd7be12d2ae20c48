import Crypto
import Foundation

/// A content digest in OCI form, `sha256:<64 hex>`.
public struct ContentDigest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let algorithm: String
    public let hex: String

    /// Parses `sha256:<hex>`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == "sha256", parts[1].count == 64,
            parts[1].allSatisfy({ $0.isHexDigit && !$0.isUppercase })
        else { return nil }
        algorithm = "sha256"
        hex = String(parts[1])
    }

    public init(sha256Hex: String) {
        algorithm = "sha256"
        hex = sha256Hex.lowercased()
    }

    public var description: String { "\(algorithm):\(hex)" }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.description < rhs.description }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let digest = ContentDigest(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a sha256 digest: \(text)"))
        }
        self = digest
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The digest of `data`.
    public static func of(_ data: some DataProtocol) -> ContentDigest {
        ContentDigest(sha256Hex: SHA256.hash(data: data).hexString)
    }

    /// Hashes the file at `path` in 1 MiB reads, returning its digest and size.
    public static func ofFile(_ path: String) throws -> (digest: ContentDigest, size: Int64) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw BoxstackError(.notFound, "cannot read \(path).")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        return (ContentDigest(sha256Hex: hasher.finalize().hexString), size)
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal text of the bytes.
    public var hexString: String {
        var text = ""
        for byte in self {
            text += String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }
        return text
    }
}
