import BoxstackCore
import Foundation
import OCI
import TestSupport
import Testing

@testable import Registry

/// Which URLs the client contacts on a registry's word, and where its credentials go: against the
/// fault registry on 127.0.0.1, whose second listener plays another host and logs what it received.
@Suite(.timeLimit(.minutes(1))) struct RegistryCredentialScopeTests {
    static let alice = RegistryCredentials(username: "alice", password: "s3cret-pw")
    static let aliceBasic = "Basic " + Data("alice:s3cret-pw".utf8).base64EncodedString()
    static let aliceAuthentication = FaultRegistry.Authentication.basic(username: "alice", password: "s3cret-pw")

    // MARK: Token realms

    @Test(arguments: ["file", "ftp", "http+unix"])
    func tokenRealmThatIsNotHTTPSIsRefusedAndNeverContacted(_ scheme: String) async throws {
        let directory = try TemporaryDirectory()
        let layout = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let socket = directory.file("token.sock")
        let encodedSocket = try #require(socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
        let realmTemplate =
            switch scheme {
            case "file": "file://\(directory.file("token"))"
            case "ftp": "ftp://127.0.0.1:{other}/token"
            default: "http+unix://\(encodedSocket)/token"
            }
        let registry = try FaultRegistry(layout: layout.path, authentication: .bearer(realm: realmTemplate), unixSocket: socket)
        let realm = realmTemplate.replacingOccurrences(of: "{other}", with: String(registry.otherPort))

        let error = await #expect(throws: BoxstackError.self) {
            try await RegistryClient.withClient(registry: registry.address, credentials: Self.alice) { client in
                try await client.manifest(repository: "app", reference: "v1")
            }
        }
        #expect(error?.code == .unsupported)
        #expect(error?.message.contains("asks for a token from \(Terminal.quoted(realm))") == true, "\(error?.message ?? "")")
        #expect(try registry.requests(on: "other").isEmpty)
        #expect(try registry.requests(on: "unix").isEmpty)
        #expect(try registry.requests(on: "registry").allSatisfy { $0.authorization == nil })
    }

    @Test func plainHTTPTokenRealmWorksForALoopbackRegistry() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, authentication: .bearer(realm: "http://127.0.0.1:{other}/token"))
        let target = try OCILayout.create(at: directory.file("target"))
        let pulled = try await RegistryClient.withClient(registry: registry.address, credentials: Self.alice) { client in
            try await ImageTransfer(client: client, showProgress: false)
                .pull(reference: ImageReference(parsing: "\(registry.address)/app:v1"), into: target, tag: "v1")
        }
        #expect(pulled.digest == (try served.descriptor(tag: "v1"))?.digest)
        let tokenRequests = try registry.requests(on: "other")
        #expect(!tokenRequests.isEmpty)
        #expect(tokenRequests.allSatisfy { $0.path.hasPrefix("/token?") && $0.authorization == Self.aliceBasic })
        let registryRequests = try registry.requests(on: "registry").filter { $0.path != "/v2/" }
        #expect(registryRequests.allSatisfy { $0.authorization == "Bearer fault-test-token" })
    }

    @Test func plainHTTPRealmIsRefusedForARemoteRegistryUnlessTLSVerificationIsOff() throws {
        let verified = RegistryURLPolicy(registry: "ghcr.io", baseURL: "https://ghcr.io", tlsVerify: true)
        #expect(try verified.tokenRealm("https://ghcr.io/token").host == "ghcr.io")
        let refused = #expect(throws: BoxstackError.self) { try verified.tokenRealm("http://ghcr.io/token") }
        #expect(refused?.code == .unsupported)
        let insecure = RegistryURLPolicy(registry: "ghcr.io", baseURL: "https://ghcr.io", tlsVerify: false)
        #expect(try insecure.tokenRealm("http://ghcr.io/token").host == "ghcr.io")
        #expect(throws: BoxstackError.self) { try insecure.tokenRealm("file:///etc/passwd") }
        // A redirect or upload Location cannot lead from HTTPS down to plain HTTP either.
        #expect(throws: BoxstackError.self) {
            try verified.followedURL("http://ghcr.io/v2/x", relativeTo: "https://ghcr.io/v2/", activity: "a test")
        }
        #expect(try verified.followedURL("/v2/x", relativeTo: "https://ghcr.io/v2/", activity: "a test") == "https://ghcr.io/v2/x")
    }

    @Test func realmTextIsEscapedInErrors() throws {
        let policy = RegistryURLPolicy(registry: "127.0.0.1:5000", baseURL: "http://127.0.0.1:5000", tlsVerify: true)
        let error = #expect(throws: BoxstackError.self) { try policy.tokenRealm("ftp://127.0.0.1/\u{1b}]0;owned\u{7}") }
        #expect(error?.message.contains("\u{1b}") == false)
        #expect(error?.message.contains(#"\u{1b}]0;owned\u{7}"#) == true, "\(error?.message ?? "")")
    }

    // MARK: Where credentials go

    @Test func credentialsGoOnlyToTheRegistrysOrigin() {
        let local = RegistryURLPolicy(registry: "127.0.0.1:5000", baseURL: "http://127.0.0.1:5000", tlsVerify: true)
        #expect(local.sendsCredentials(to: "http://127.0.0.1:5000/v2/app/blobs/uploads/1"))
        #expect(!local.sendsCredentials(to: "http://127.0.0.1:5001/v2/app/blobs/uploads/1"))
        #expect(!local.sendsCredentials(to: "http://localhost:5000/v2/app/blobs/uploads/1"))
        #expect(!local.sendsCredentials(to: "https://127.0.0.1:5000/v2/app/blobs/uploads/1"))
        let hub = RegistryURLPolicy(registry: "docker.io", baseURL: "https://registry-1.docker.io", tlsVerify: true)
        #expect(hub.sendsCredentials(to: "https://registry-1.docker.io:443/v2/library/debian/manifests/stable"))
        #expect(!hub.sendsCredentials(to: "https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs"))
    }

    @Test func uploadSessionOnAnotherHostGetsNoCredentials() async throws {
        let directory = try TemporaryDirectory()
        let source = try TestImages.makeRaw(at: directory.file("source"), tag: "v1", layerSize: 40_000)
        let served = try OCILayout.create(at: directory.file("served"))
        let registry = try FaultRegistry(layout: served.path, fault: .uploadElsewhere, authentication: Self.aliceAuthentication)
        // 16 KiB chunks: the 40 kB layer goes up as PATCH requests and a closing PUT.
        let pushed = try await RegistryClient.withClient(
            registry: registry.address, credentials: Self.alice, uploadChunkSize: 16 << 10
        ) { client in
            try await ImageTransfer(client: client, showProgress: false)
                .push(layout: source, tag: "v1", to: ImageReference(parsing: "\(registry.address)/app:v1"))
        }
        #expect(pushed == (try source.descriptor(tag: "v1"))?.digest)
        let elsewhere = try registry.requests(on: "other")
        #expect(elsewhere.contains { $0.method == "PATCH" })
        #expect(elsewhere.filter { $0.method == "PUT" }.count == 2)
        #expect(elsewhere.allSatisfy { $0.authorization == nil })
        let onRegistry = try registry.requests(on: "registry").filter { $0.path != "/v2/" }
        #expect(onRegistry.allSatisfy { $0.authorization == Self.aliceBasic })
        let (_, manifest) = try #require(try source.manifest(tag: "v1"))
        for blob in [manifest.config] + manifest.layers {
            #expect(try ContentDigest.ofFile(served.blobPath(blob.digest)).digest == blob.digest)
        }
    }

    // MARK: Redirects

    @Test func blobRedirectedToAnotherHostDownloadsWithoutCredentials() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, fault: .redirectBlob, authentication: Self.aliceAuthentication)
        let target = try OCILayout.create(at: directory.file("target"))
        let pulled = try await RegistryClient.withClient(registry: registry.address, credentials: Self.alice) { client in
            try await ImageTransfer(client: client, showProgress: false)
                .pull(reference: ImageReference(parsing: "\(registry.address)/app:v1"), into: target, tag: "v1")
        }
        let (descriptor, manifest) = try #require(try served.manifest(tag: "v1"))
        #expect(pulled.digest == descriptor.digest)
        for blob in [manifest.config] + manifest.layers {
            #expect(try ContentDigest.ofFile(target.blobPath(blob.digest)).digest == blob.digest)
        }
        let cdn = try registry.requests(on: "other")
        #expect(Set(cdn.map(\.path)) == Set(([manifest.config] + manifest.layers).map { "/cdn/\($0.digest)" }))
        #expect(cdn.allSatisfy { $0.authorization == nil })
        let blobRequests = try registry.requests(on: "registry").filter { $0.path.contains("/blobs/") }
        #expect(!blobRequests.isEmpty)
        #expect(blobRequests.allSatisfy { $0.authorization == Self.aliceBasic })
    }

    @Test func endlessRedirectsStopAfterFive() async throws {
        let directory = try TemporaryDirectory()
        let served = try TestImages.makeRaw(at: directory.file("served"), tag: "v1")
        let registry = try FaultRegistry(layout: served.path, fault: .redirectLoop)
        let (_, manifest) = try #require(try served.manifest(tag: "v1"))
        let layer = try #require(manifest.layers.first)
        let error = await #expect(throws: BoxstackError.self) {
            try await RegistryClient.withClient(registry: registry.address) { client in
                try await client.downloadBlob(repository: "app", digest: layer.digest, to: directory.file("layer"))
            }
        }
        #expect(error?.message.contains("redirected more than 5 times while downloading the blob \(layer.digest)") == true, "\(error?.message ?? "")")
        #expect(try registry.requests(on: "registry").filter { $0.path.hasSuffix("/blobs/\(layer.digest)") }.count == 6)
        #expect(!FileManager.default.fileExists(atPath: directory.file("layer")))
    }
}
