import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

@Suite("ed25519 key pairs made with libssh")
struct SSHKeyPairTests {
    @Test("the private key file is 0600 and the public line is what OpenSSH expects")
    func generatesKeyFiles() throws {
        let directory = try TemporaryDirectory("keys")
        let key = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("id_ed25519"), comment: "boxstack-run")
        let attributes = try FileManager.default.attributesOfItem(atPath: key.privateKeyPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(key.publicKey.hasPrefix("ssh-ed25519 AAAA"))
        #expect(key.publicKey.hasSuffix(" boxstack-run"))
        #expect(try String(contentsOfFile: key.publicKeyPath, encoding: .utf8) == key.publicKey + "\n")

        // OpenSSH reads both files and computes the same fingerprint.
        let fromPrivate = try Subprocess.run(["ssh-keygen", "-y", "-f", key.privateKeyPath]).check().output
        #expect(fromPrivate.hasPrefix(key.publicKey.split(separator: " ").prefix(2).joined(separator: " ")))
        let listed = try Subprocess.run(["ssh-keygen", "-l", "-f", key.publicKeyPath]).check().output
        #expect(listed.contains(key.fingerprint))
        #expect(try SSHKeyPair.load(privateKeyPath: key.privateKeyPath).fingerprint == key.fingerprint)
    }

    @Test("two generated keys differ")
    func keysAreFresh() throws {
        let directory = try TemporaryDirectory("keys")
        let first = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("a"))
        let second = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("b"))
        #expect(first.publicKey != second.publicKey)
    }

    @Test("a generated key serves as OpenSSH sshd's host key and is pinned by the client")
    func generatedHostKeyWorksWithSSHD() throws {
        let directory = try TemporaryDirectory("keys")
        let hostKey = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("ssh_host_ed25519_key"))
        let clientKey = try SSHKeyPair.generateEd25519(privateKeyPath: directory.file("client"))
        let server = try SSHDServer(
            authorizedKeys: [clientKey.publicKey], hostKey: (hostKey.privateKeyPath, hostKey.publicKey))
        let endpoint = SSHEndpoint(
            port: server.port, user: server.user, privateKeyPath: clientKey.privateKeyPath, hostKey: hostKey.publicKey)
        let session = try SSHSession.connect(to: endpoint)
        #expect(try session.run("echo pinned").output == "pinned\n")
    }

    @Test("a malformed pinned key is rejected before connecting")
    func malformedPinnedKey() throws {
        #expect(throws: BoxstackError.self) { try SSHKeyPair.fingerprint(ofPublicKey: "not a key") }
        #expect(throws: BoxstackError.self) { try SSHKeyPair.fingerprint(ofPublicKey: "ssh-ed25519 !!!!") }
    }
}
