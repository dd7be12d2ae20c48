import BoxstackCore
import Foundation

/// A tar archive written byte by byte, with nothing checked or cleaned: the names, link targets,
/// types and sizes are exactly what the test gives, as a hostile layer would carry them. Names or
/// link targets longer than the ustar fields go into a pax extended header.
public struct RawTar {
    public enum Kind: UInt8 {
        case file = 0x30
        case hardlink = 0x31
        case symlink = 0x32
        case characterDevice = 0x33
        case blockDevice = 0x34
        case directory = 0x35
        case fifo = 0x36
    }

    public struct Member {
        public var name: String
        public var kind: Kind
        public var link: String
        public var content: [UInt8]
        public var mode: Int
        public var uid: Int
        public var gid: Int
        /// Overrides the size field (a header that promises more data than follows, say).
        public var declaredSize: Int?

        public init(
            _ name: String, _ kind: Kind = .file, link: String = "", content: String = "", mode: Int? = nil,
            uid: Int = Int(getuid()), gid: Int = Int(getgid()), declaredSize: Int? = nil
        ) {
            self.name = name
            self.kind = kind
            self.link = link
            self.content = Array(content.utf8)
            self.mode = mode ?? (kind == .directory ? 0o755 : 0o644)
            self.uid = uid
            self.gid = gid
            self.declaredSize = declaredSize
        }
    }

    public var members: [Member]

    public init(_ members: [Member]) { self.members = members }

    /// The archive's bytes, ending with the two zero blocks.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for member in members {
            var pax: [(String, String)] = []
            if member.name.utf8.count > 100 { pax.append(("path", member.name)) }
            if member.link.utf8.count > 100 { pax.append(("linkpath", member.link)) }
            if !pax.isEmpty {
                var records: [UInt8] = []
                for (key, value) in pax { records += Self.paxRecord(key, value) }
                out += Self.header(name: "PaxHeader", type: 0x78, link: "", size: records.count, mode: 0o644, uid: 0, gid: 0)
                out += Self.padded(records)
            }
            let size = member.kind == .file ? member.content.count : 0
            out += Self.header(
                name: String(decoding: member.name.utf8.prefix(100), as: UTF8.self), type: member.kind.rawValue,
                link: String(decoding: member.link.utf8.prefix(100), as: UTF8.self), size: member.declaredSize ?? size,
                mode: member.mode, uid: member.uid, gid: member.gid)
            out += Self.padded(member.content)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    /// Writes the archive to `path`; with `gzip`, compressed by the system's gzip.
    public func write(to path: String, gzip: Bool = false) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        if gzip {
            try Subprocess.run(["gzip", "-n", "-f", path]).check()
            try FileManager.default.moveItem(atPath: path + ".gz", toPath: path)
        }
    }

    private static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while "\(length)".utf8.count + body.utf8.count != length { length += 1 }
        return Array("\(length)\(body)".utf8)
    }

    private static func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    private static func header(name: String, type: UInt8, link: String, size: Int, mode: Int, uid: Int, gid: Int) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, length: Int) {
            for (index, byte) in text.utf8.prefix(length).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: Int, at offset: Int, length: Int) {
            put(String(String(value, radix: 8).suffix(length - 1)).leftPadded(to: length - 1), at: offset, length: length - 1)
        }
        put(name, at: 0, length: 100)
        octal(mode, at: 100, length: 8)
        octal(uid, at: 108, length: 8)
        octal(gid, at: 116, length: 8)
        octal(size, at: 124, length: 12)
        octal(1_600_000_000, at: 136, length: 12)
        block[156] = type
        put(link, at: 157, length: 100)
        put("ustar", at: 257, length: 6)
        put("00", at: 263, length: 2)
        for index in 148..<156 { block[index] = 0x20 }
        let checksum = block.reduce(0) { $0 + Int($1) }
        put(String(String(checksum, radix: 8)).leftPadded(to: 6), at: 148, length: 6)
        block[154] = 0
        block[155] = 0x20
        return block
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        String(repeating: "0", count: max(0, length - count)) + self
    }
}
