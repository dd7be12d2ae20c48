import BoxstackCore
import Foundation
import OCI
import Registry
import TestSupport
import Testing

/// Tests against real docker-registry processes, run one at a time to keep a 2-core machine responsive.
@Suite(.serialized) enum RegistryServerTests {}

/// Push and pull against a real Debian docker-registry on 127.0.0.1, checked with skopeo.
extension RegistryServerTests {
    @Suite struct Transfer {
        /// A layout with tag `v1`: a small layer and a 3 MiB one (larger than the 1 MiB chunk size used below).
        static func sampleLayout(_ directory: TemporaryDirectory) throws -> OCILayout {
            try TestImages.make(
                at: directory.file("source"), tag: "v1",
                layers: [["etc/hello": Data("hello\n".utf8)], ["data/blob.bin": TestImages.randomBytes(3 << 20)]])
        }

        static func skopeoDigest(_ reference: String, credentials: String? = nil) throws -> String? {
            let json = try TestImages.skopeoInspect(reference, credentials: credentials)
            return (try JSONSerialization.jsonObject(with: json) as? [String: Any])?["Digest"] as? String
        }

        @Test func pushThenPullRoundTripKeepsEveryDigest() async throws {
            let registry = try RegistryServer()
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let source = try Self.sampleLayout(directory)
            let reference = try ImageReference(parsing: "\(registry.address)/stash/sample:v1")
            let (sourceDescriptor, sourceManifest) = try #require(try source.manifest(tag: "v1"))

            let (pushed, pushStatistics) = try await RegistryClient.withClient(registry: registry.address, uploadChunkSize: 1 << 20) { client in
                let digest = try await ImageTransfer(client: client, showProgress: false).push(layout: source, tag: "v1", to: reference)
                return (digest, client.statistics)
            }
            #expect(pushed == sourceDescriptor.digest)
            #expect(pushStatistics.blobsUploaded == sourceManifest.layers.count + 1)
            #expect(pushStatistics.bytesUploaded == sourceManifest.layers.reduce(sourceManifest.config.size) { $0 + $1.size })
            // skopeo sees exactly what we pushed.
            #expect(try Self.skopeoDigest(reference.description) == pushed.description)

            let target = try OCILayout.create(at: directory.file("target"))
            let pulled = try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false).pull(reference: reference, into: target, tag: "copy")
            }
            #expect(pulled.digest == sourceDescriptor.digest)
            let (_, pulledManifest) = try #require(try target.manifest(tag: "copy"))
            #expect(pulledManifest == sourceManifest)
            for blob in [pulledManifest.config] + pulledManifest.layers {
                #expect(try ContentDigest.ofFile(target.blobPath(blob.digest)).digest == blob.digest)
            }
            // The pulled layout is a valid image for other tools too.
            let bundle = directory.file("bundle")
            try Subprocess.run(["umoci", "unpack", "--rootless", "--image", "\(target.path):copy", bundle]).check()
            #expect(FileManager.default.contents(atPath: bundle + "/rootfs/etc/hello") == Data("hello\n".utf8))
        }

        @Test func secondPushUploadsNothing() async throws {
            let registry = try RegistryServer()
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let source = try Self.sampleLayout(directory)
            let reference = try ImageReference(parsing: "\(registry.address)/stash/again:v1")
            for _ in 0..<2 {
                _ = try await RegistryClient.withClient(registry: registry.address) { client in
                    try await ImageTransfer(client: client, showProgress: false).push(layout: source, tag: "v1", to: reference)
                }
            }
            let statistics = try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false).push(layout: source, tag: "v1", to: reference)
                return client.statistics
            }
            #expect(statistics.blobsUploaded == 0)
            #expect(statistics.bytesUploaded == 0)
            #expect(statistics.blobsSkipped == 3)

            // Pulling into a layout that already has every blob downloads none.
            let pullStatistics = try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false).pull(reference: reference, into: source, tag: "again")
                return client.statistics
            }
            #expect(pullStatistics.bytesDownloaded == 0)
            #expect(try source.descriptor(tag: "again")?.digest == source.descriptor(tag: "v1")?.digest)
        }

        @Test func crossRepositoryMountSendsNoBlobBytes() async throws {
            let registry = try RegistryServer()
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let source = try Self.sampleLayout(directory)
            let first = try ImageReference(parsing: "\(registry.address)/team/first:v1")
            let second = try ImageReference(parsing: "\(registry.address)/team/second:v1")
            try await RegistryClient.withClient(registry: registry.address) { client in
                _ = try await ImageTransfer(client: client, showProgress: false).push(layout: source, tag: "v1", to: first)
            }
            let statistics = try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false)
                    .push(layout: source, tag: "v1", to: second, mountFrom: first.repository)
                return client.statistics
            }
            #expect(statistics.blobsMounted == 3)
            #expect(statistics.bytesUploaded == 0)
            #expect(try Self.skopeoDigest(second.description) == Self.skopeoDigest(first.description))
        }

        @Test func pullsDockerSchema2ImagePushedBySkopeoAsIs() async throws {
            let registry = try RegistryServer()
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            _ = try Self.sampleLayout(directory)
            let remote = "\(registry.address)/skopeo/pushed:v1"
            try Subprocess.run([
                "skopeo", "copy", "--format", "v2s2", "--dest-tls-verify=false",
                "oci:\(directory.file("source")):v1", "docker://\(remote)",
            ]).check()
            let rawManifest = try TestImages.skopeoInspect(remote, raw: true)

            let target = try OCILayout.create(at: directory.file("target"))
            let pulled = try await RegistryClient.withClient(registry: registry.address) { client in
                try await ImageTransfer(client: client, showProgress: false)
                    .pull(reference: ImageReference(parsing: remote), into: target, tag: "v1")
            }
            #expect(pulled.mediaType == MediaType.dockerManifest)
            #expect(pulled.digest == ContentDigest.of(rawManifest))
            #expect(try target.readBlob(pulled.digest) == rawManifest)
            let (_, manifest) = try #require(try target.manifest(tag: "v1"))
            #expect(manifest.config.mediaType == MediaType.dockerConfig)
            #expect(manifest.layers.count == 2)
            for layer in manifest.layers {
                #expect(layer.mediaType == MediaType.dockerLayerGzip)
                #expect(try ContentDigest.ofFile(target.blobPath(layer.digest)) == (layer.digest, layer.size))
            }
        }

        @Test func brokenBlobFailsPullNamingItAndLeavesLayoutUnchanged() async throws {
            let registry = try RegistryServer()
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let source = try Self.sampleLayout(directory)
            let reference = try ImageReference(parsing: "\(registry.address)/stash/broken:v1")
            try await RegistryClient.withClient(registry: registry.address) { client in
                _ = try await ImageTransfer(client: client, showProgress: false).push(layout: source, tag: "v1", to: reference)
            }
            // Flip bytes of the big layer inside the registry's storage, keeping its size.
            let (_, manifest) = try #require(try source.manifest(tag: "v1"))
            let broken = try #require(manifest.layers.max { $0.size < $1.size })
            let dataPath = registry.blobDataPath(broken.digest)
            var bytes = try #require(FileManager.default.contents(atPath: dataPath))
            for index in stride(from: 1000, to: 1100, by: 1) { bytes[index] ^= 0xFF }
            try bytes.write(to: URL(fileURLWithPath: dataPath))

            // A layout that already holds another image must look exactly as before.
            let target = try TestImages.make(at: directory.file("target"), tag: "existing", layers: [["a": Data("a".utf8)]])
            let before = try TestImages.snapshot(target.path)
            let error = await #expect(throws: BoxstackError.self) {
                try await RegistryClient.withClient(registry: registry.address) { client in
                    try await ImageTransfer(client: client, showProgress: false).pull(reference: reference, into: target, tag: "v1")
                }
            }
            #expect(error?.code == .checksumMismatch)
            #expect(error?.message.contains(broken.digest.description) == true, "\(error?.message ?? "")")
            #expect(try TestImages.snapshot(target.path) == before)
            #expect(try target.tags() == ["existing"])
        }

        @Test func pushesIndexAndPullsThePlatformsImage() async throws {
            let registry = try RegistryServer()
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let path = directory.file("source")
            try TestImages.make(at: path, tag: "amd", layers: [["arch": Data("amd64".utf8)]])
            let source = try TestImages.make(at: path, tag: "arm", layers: [["arch": Data("arm64".utf8)]])
            var amd = try #require(try source.descriptor(tag: "amd"))
            var arm = try #require(try source.descriptor(tag: "arm"))
            amd.annotations = nil
            arm.annotations = nil
            amd.platform = Platform(architecture: "amd64")
            arm.platform = Platform(architecture: "arm64", variant: "v8")
            let index = try source.writeBlob(OCIJSON.encode(ImageIndex(manifests: [amd, arm])), mediaType: MediaType.imageIndex)
            try source.setTag("multi", to: index)
            let reference = try ImageReference(parsing: "\(registry.address)/multi/app:v1")

            let target = try OCILayout.create(at: directory.file("target"))
            try await RegistryClient.withClient(registry: registry.address) { client in
                let transfer = ImageTransfer(client: client, showProgress: false)
                #expect(try await transfer.push(layout: source, tag: "multi", to: reference) == index.digest)
                let pulled = try await transfer.pull(
                    reference: reference, into: target, tag: "arm", platform: Platform(architecture: "arm64"))
                #expect(pulled.digest == arm.digest)
                let error = await #expect(throws: BoxstackError.self) {
                    try await transfer.pull(reference: reference, into: target, tag: "s390x", platform: Platform(architecture: "s390x"))
                }
                #expect(error?.code == .notFound)
                #expect(error?.message.contains("linux/amd64, linux/arm64") == true, "\(error?.message ?? "")")
            }
            let bundle = directory.file("bundle")
            try Subprocess.run(["umoci", "unpack", "--rootless", "--image", "\(target.path):arm", bundle]).check()
            #expect(FileManager.default.contents(atPath: bundle + "/rootfs/arch") == Data("arm64".utf8))
        }
    }

}

/// The registry's htpasswd (basic auth) and token-auth configurations, with credentials from an auth file.
extension RegistryServerTests {
    @Suite struct Authentication {
        static let modes: [TestSupport.RegistryServer.Authentication] = [
            .basic(username: "alice", password: "s3cret-pw"), .token(username: "alice", password: "s3cret-pw"),
        ]

        static func writeAuthFile(_ path: String, registry: String, user: String, password: String) throws {
            let auth = Data("\(user):\(password)".utf8).base64EncodedString()
            try Data(#"{"auths":{"\#(registry)":{"auth":"\#(auth)"}}}"#.utf8).write(to: URL(fileURLWithPath: path))
        }

        @Test(arguments: modes)
        func pushAndPullWithCredentialsFromRegistryAuthFile(_ authentication: TestSupport.RegistryServer.Authentication) async throws {
            let registry = try RegistryServer(authentication: authentication)
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let source = try TestImages.make(at: directory.file("source"), tag: "v1", layers: [["f": Data("x".utf8)]])
            try Self.writeAuthFile(directory.file("auth.json"), registry: registry.address, user: "alice", password: "s3cret-pw")
            let reference = try ImageReference(parsing: "\(registry.address)/private/app:v1")
            let credentials = try RegistryCredentials.lookup(
                registry: reference.registry, repository: reference.repository,
                environment: ["REGISTRY_AUTH_FILE": directory.file("auth.json")])
            #expect(credentials?.username == "alice")

            let target = try OCILayout.create(at: directory.file("target"))
            let (pushed, pulled) = try await RegistryClient.withClient(registry: registry.address, credentials: credentials) { client in
                let transfer = ImageTransfer(client: client, showProgress: false)
                let pushed = try await transfer.push(layout: source, tag: "v1", to: reference)
                return (pushed, try await transfer.pull(reference: reference, into: target, tag: "v1"))
            }
            #expect(pulled.digest == pushed)
            let json = try TestImages.skopeoInspect(reference.description, credentials: "alice:s3cret-pw")
            #expect((try JSONSerialization.jsonObject(with: json) as? [String: Any])?["Digest"] as? String == pushed.description)
        }

        @Test(arguments: modes)
        func wrongPasswordAndMissingCredentialsGiveClearErrors(_ authentication: TestSupport.RegistryServer.Authentication) async throws {
            let registry = try RegistryServer(authentication: authentication)
            defer { registry.stop() }
            let directory = try TemporaryDirectory()
            let source = try TestImages.make(at: directory.file("source"), tag: "v1", layers: [["f": Data("x".utf8)]])
            let authFile = directory.file("auth.json")
            try Self.writeAuthFile(authFile, registry: registry.address, user: "alice", password: "wrong")
            let reference = try ImageReference(parsing: "\(registry.address)/private/app:v1")
            let wrong = try RegistryCredentials.lookup(registry: registry.address, environment: ["REGISTRY_AUTH_FILE": authFile])

            let rejected = await #expect(throws: BoxstackError.self) {
                try await RegistryClient.withClient(registry: registry.address, credentials: wrong) { client in
                    try await ImageTransfer(client: client, showProgress: false).push(layout: source, tag: "v1", to: reference)
                }
            }
            #expect(rejected?.code == .permission)
            #expect(rejected?.message.contains("rejected the credentials of user alice from \(authFile)") == true, "\(rejected?.message ?? "")")

            let anonymous = await #expect(throws: BoxstackError.self) {
                try await RegistryClient.withClient(registry: registry.address) { client in
                    try await client.manifest(repository: "private/app", reference: "v1")
                }
            }
            #expect(anonymous?.code == .permission)
            #expect(anonymous?.message.contains("requires authentication") == true, "\(anonymous?.message ?? "")")
        }
    }
}
