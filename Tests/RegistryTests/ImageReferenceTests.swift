import BoxstackCore
import Registry
import Testing

@Suite struct ImageReferenceTests {
    struct Case: Sendable, CustomStringConvertible {
        var text: String
        var registry: String
        var repository: String
        var tag: String?
        var digest: String?
        var description: String { text }
    }

    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    static let valid: [Case] = [
        Case(text: "alpine", registry: "docker.io", repository: "library/alpine", tag: "latest"),
        Case(text: "alpine:3.20", registry: "docker.io", repository: "library/alpine", tag: "3.20"),
        Case(text: "docker.io/alpine", registry: "docker.io", repository: "library/alpine", tag: "latest"),
        Case(text: "index.docker.io/team/app:v1", registry: "docker.io", repository: "team/app", tag: "v1"),
        Case(text: "team/app", registry: "docker.io", repository: "team/app", tag: "latest"),
        Case(text: "127.0.0.1:5000/stash/debian:v2", registry: "127.0.0.1:5000", repository: "stash/debian", tag: "v2"),
        Case(text: "localhost/app", registry: "localhost", repository: "app", tag: "latest"),
        Case(text: "localhost:5000/app:latest", registry: "localhost:5000", repository: "app", tag: "latest"),
        Case(text: "quay.io/org/sub/image_name__x.y-z:1.0-rc_1", registry: "quay.io", repository: "org/sub/image_name__x.y-z", tag: "1.0-rc_1"),
        Case(text: "registry.example.com:8443/app@\(digest)", registry: "registry.example.com:8443", repository: "app", tag: nil, digest: digest),
        Case(text: "[::1]:5000/app:v1@\(digest)", registry: "[::1]:5000", repository: "app", tag: "v1", digest: digest),
    ]

    @Test(arguments: valid)
    func parsesValidReference(_ testCase: Case) throws {
        let reference = try ImageReference(parsing: testCase.text)
        #expect(reference.registry == testCase.registry)
        #expect(reference.repository == testCase.repository)
        #expect(reference.tag == testCase.tag)
        #expect(reference.digest?.description == testCase.digest)
        // The canonical form parses back to the same reference.
        #expect(try ImageReference(parsing: reference.description) == reference)
    }

    @Test(arguments: [
        ("", "empty"),
        ("Alpine", "lower-case"),
        ("app:", "tag"),
        ("app:-bad", "tag"),
        ("app:" + String(repeating: "t", count: 129), "tag"),
        ("app@sha256:1234", "digest"),
        ("app@md5:" + String(repeating: "0", count: 32), "digest"),
        ("team//app", "empty"),
        ("team/app-", "lower-case"),
        ("host:99999/app", "registry"),
        ("bad_host.com/app", "registry"),
    ])
    func rejectsInvalidReference(_ text: String, _ rule: String) {
        let error = #expect(throws: BoxstackError.self) { try ImageReference(parsing: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(rule) == true, "\(error?.message ?? "")")
    }

    @Test func loopbackRegistriesAreRecognised() throws {
        #expect(try ImageReference(parsing: "127.0.0.1:5000/a").isLoopback)
        #expect(try ImageReference(parsing: "localhost:5000/a").isLoopback)
        #expect(try ImageReference(parsing: "[::1]:5000/a").isLoopback)
        #expect(try !ImageReference(parsing: "registry.example.com/a").isLoopback)
        #expect(try !ImageReference(parsing: "alpine").isLoopback)
    }

    @Test func manifestReferencePrefersDigest() throws {
        #expect(try ImageReference(parsing: "a:v1").manifestReference == "v1")
        #expect(try ImageReference(parsing: "a:v1@\(Self.digest)").manifestReference == Self.digest)
    }
}
