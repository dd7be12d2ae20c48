import CLibArchive

/// POSIX ACLs of a tar entry in the binary form the kernel keeps in `system.posix_acl_access` and
/// `system.posix_acl_default` (version 2, then tag, permissions and id per entry, little-endian).
enum PosixACL {
    /// The attribute value for the entry's ACL of `type`, or nil when it has none beyond its mode.
    static func attribute(_ entry: OpaquePointer, type: Int32) -> [UInt8]? {
        guard archive_entry_acl_reset(entry, type) > 0 else { return nil }
        var items: [(tag: UInt16, permissions: UInt16, id: UInt32)] = []
        var entryType: Int32 = 0
        var permissions: Int32 = 0
        var tag: Int32 = 0
        var qualifier: Int32 = 0
        var name: UnsafePointer<CChar>?
        var extended = false
        while archive_entry_acl_next(entry, type, &entryType, &permissions, &tag, &qualifier, &name) == ARCHIVE_OK {
            let kernelTag: UInt16
            switch tag {
            case ARCHIVE_ENTRY_ACL_USER_OBJ: kernelTag = 0x01
            case ARCHIVE_ENTRY_ACL_USER: kernelTag = 0x02
            case ARCHIVE_ENTRY_ACL_GROUP_OBJ: kernelTag = 0x04
            case ARCHIVE_ENTRY_ACL_GROUP: kernelTag = 0x08
            case ARCHIVE_ENTRY_ACL_MASK: kernelTag = 0x10
            case ARCHIVE_ENTRY_ACL_OTHER: kernelTag = 0x20
            default: continue
            }
            let named = kernelTag == 0x02 || kernelTag == 0x08
            extended = extended || named || kernelTag == 0x10 || type == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT
            items.append((kernelTag, UInt16(permissions & 0o7), named ? UInt32(bitPattern: qualifier) : UInt32.max))
        }
        guard extended, !items.isEmpty else { return nil }
        items.sort { ($0.tag, $0.id) < ($1.tag, $1.id) }
        var bytes: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        append(UInt32(2))
        for item in items {
            append(item.tag)
            append(item.permissions)
            append(item.id)
        }
        return bytes
    }
}
