import BoxstackCore
import CLibSSH
import Foundation

/// Small helpers around libssh's C API shared by keys, sessions and channels.
enum LibSSH {
    /// libssh initialises its crypto backend once per process; later calls are no-ops.
    static let initialised: Bool = ssh_init() == SSH_OK

    /// The last error libssh recorded on `session`.
    static func lastError(_ session: OpaquePointer?) -> String {
        guard let session, let text = ssh_get_error(UnsafeMutableRawPointer(session)) else {
            return "unknown libssh error"
        }
        let message = String(cString: text)
        return message.isEmpty ? "unknown libssh error" : message
    }
}

/// An owned libssh key (`ssh_key`), freed with the value.
final class LibSSHKey: @unchecked Sendable {
    let handle: OpaquePointer

    init(taking handle: OpaquePointer) { self.handle = handle }
    deinit { ssh_key_free(handle) }

    /// Parses one OpenSSH public key line ("ssh-ed25519 AAAA... comment").
    static func publicKey(fromOpenSSHLine line: String) throws -> LibSSHKey {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard fields.count >= 2 else {
            throw BoxstackError(.invalidData, "\"\(line)\" is not an OpenSSH public key line (\"TYPE BASE64 [COMMENT]\").")
        }
        _ = LibSSH.initialised
        let type = ssh_key_type_from_name(String(fields[0]))
        guard type != SSH_KEYTYPE_UNKNOWN else {
            throw BoxstackError(.invalidData, "The public key type \(fields[0]) is not one libssh knows.")
        }
        var key: OpaquePointer?
        guard ssh_pki_import_pubkey_base64(String(fields[1]), type, &key) == SSH_OK, let key else {
            throw BoxstackError(.invalidData, "The public key \"\(line.prefix(60))...\" could not be decoded.")
        }
        return LibSSHKey(taking: key)
    }

    static func privateKey(file path: String) throws -> LibSSHKey {
        _ = LibSSH.initialised
        var key: OpaquePointer?
        guard ssh_pki_import_privkey_file(path, nil, nil, nil, &key) == SSH_OK, let key else {
            throw BoxstackError(.invalidData, "The SSH private key \(path) could not be read; it must be an unencrypted key file.")
        }
        return LibSSHKey(taking: key)
    }

    /// The OpenSSH line of the public part: "TYPE BASE64".
    func openSSHPublicLine() throws -> String {
        var base64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(handle, &base64) == SSH_OK, let base64 else {
            throw BoxstackError(.internalError, "libssh could not export a public key.")
        }
        defer { ssh_string_free_char(base64) }
        let typeName = ssh_key_type_to_char(ssh_key_type(handle)).map { String(cString: $0) } ?? "unknown"
        return "\(typeName) \(String(cString: base64))"
    }

    /// The fingerprint as OpenSSH prints it: "SHA256:base64".
    var fingerprint: String {
        var hash: UnsafeMutablePointer<UInt8>?
        var length = 0
        guard ssh_get_publickey_hash(handle, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) == SSH_OK, let digest = hash
        else { return "unknown fingerprint" }
        defer { ssh_clean_pubkey_hash(&hash) }
        guard let text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, digest, length) else {
            return "unknown fingerprint"
        }
        defer { ssh_string_free_char(text) }
        return String(cString: text)
    }

    func hasSamePublicKey(as other: LibSSHKey) -> Bool {
        ssh_key_cmp(handle, other.handle, SSH_KEY_CMP_PUBLIC) == 0
    }
}
