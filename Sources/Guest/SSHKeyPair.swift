import BoxstackCore
import CLibSSH
import Foundation

/// An SSH key pair on disk: an unencrypted OpenSSH private key file (0600) and its public line.
///
/// boxstack makes two per run: the client key it logs in with, and the guest's host key, whose
/// private part goes into the seed share and whose public part the controller pins.
public struct SSHKeyPair: Sendable, Equatable {
    /// The private key file, mode 0600.
    public let privateKeyPath: String
    /// The public key as one OpenSSH line: "ssh-ed25519 BASE64 COMMENT".
    public let publicKey: String
    /// The public key's fingerprint as OpenSSH prints it ("SHA256:...").
    public let fingerprint: String

    /// The public key file written beside the private one.
    public var publicKeyPath: String { privateKeyPath + ".pub" }

    /// Generates a fresh ed25519 key with libssh, writes the private key to `privateKeyPath` (0600)
    /// and the public line to `privateKeyPath.pub` (0644). Both files are replaced atomically.
    public static func generateEd25519(privateKeyPath: String, comment: String = "boxstack") throws -> SSHKeyPair {
        _ = LibSSH.initialised
        var generated: OpaquePointer?
        guard ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &generated) == SSH_OK, let generated else {
            throw BoxstackError(.internalError, "libssh could not generate an ed25519 key.")
        }
        let key = LibSSHKey(taking: generated)
        try writePrivateKey(key, to: privateKeyPath)
        let publicLine = try key.openSSHPublicLine() + (comment.isEmpty ? "" : " \(comment)")
        try Data((publicLine + "\n").utf8).writeAtomically(to: privateKeyPath + ".pub", mode: 0o644)
        return SSHKeyPair(privateKeyPath: privateKeyPath, publicKey: publicLine, fingerprint: key.fingerprint)
    }

    /// Reads an existing unencrypted private key file and derives its public line.
    public static func load(privateKeyPath: String) throws -> SSHKeyPair {
        let key = try LibSSHKey.privateKey(file: privateKeyPath)
        return SSHKeyPair(
            privateKeyPath: privateKeyPath, publicKey: try key.openSSHPublicLine(), fingerprint: key.fingerprint)
    }

    /// The fingerprint ("SHA256:...") of an OpenSSH public key line.
    public static func fingerprint(ofPublicKey line: String) throws -> String {
        try LibSSHKey.publicKey(fromOpenSSHLine: line).fingerprint
    }

    /// Exports into a temporary file that is created 0600 before any key byte is written, then renames it.
    private static func writePrivateKey(_ key: LibSSHKey, to path: String) throws {
        try AtomicFile.replace(path, mode: 0o600) { temporary in
            // libssh reopens the file with fopen("wb"), which keeps the 0600 mode.
            guard ssh_pki_export_privkey_file(key.handle, nil, nil, nil, temporary) == SSH_OK else {
                throw BoxstackError(.permission, "libssh could not write the private key to \(temporary).")
            }
        }
    }
}
