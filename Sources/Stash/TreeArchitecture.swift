import Foundation

/// Finds the CPU architecture of a root tree from an ELF binary in it.
enum TreeArchitecture {
    /// The Go architecture name of the tree's `/usr/bin/env` (or `/bin/sh`), or nil when neither is ELF.
    static func detect(root: String) -> String? {
        for candidate in ["/usr/bin/env", "/bin/sh", "/usr/bin/bash"] {
            guard let handle = FileHandle(forReadingAtPath: root + candidate) else { continue }
            defer { try? handle.close() }
            guard let header = try? handle.read(upToCount: 20), header.count == 20, header.starts(with: [0x7F, 0x45, 0x4C, 0x46])
            else { continue }
            let machine = UInt16(header[header.startIndex + 18]) | UInt16(header[header.startIndex + 19]) << 8
            switch machine {
            case 0x3E: return "amd64"
            case 0xB7: return "arm64"
            case 0x28: return "arm"
            case 0x03: return "386"
            case 0xF3: return "riscv64"
            case 0x15: return "ppc64le"
            case 0x16: return "s390x"
            default: continue
            }
        }
        return nil
    }

}
