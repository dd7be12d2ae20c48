import BoxstackCore
import Foundation
import Registry
import TestSupport
import Testing

@Suite struct RegistryCredentialsTests {
    static func authJSON(_ entries: [String: (String, String)]) -> Data {
        var auths: [String: [String: String]] = [:]
        for (key, (user, password)) in entries {
            auths[key] = ["auth": Data("\(user):\(password)".utf8).base64EncodedString()]
        }
        return (try? JSONSerialization.data(withJSONObject: ["auths": auths])) ?? Data()
    }

    @Test func registryAuthFileComesFirstThenRuntimeThenDockerConfig() throws {
        let directory = try TemporaryDirectory()
        try FileManager.default.makeDirectory(directory.file("run/containers"))
        try FileManager.default.makeDirectory(directory.file("home/.docker"))
        try Self.authJSON(["reg.example:5000": ("fromfile", "p1")]).write(to: URL(fileURLWithPath: directory.file("auth.json")))
        try Self.authJSON(["reg.example:5000": ("runtime", "p2"), "other.example": ("runtime", "p3")])
            .write(to: URL(fileURLWithPath: directory.file("run/containers/auth.json")))
        try Self.authJSON(["https://index.docker.io/v1/": ("hubuser", "p4")])
            .write(to: URL(fileURLWithPath: directory.file("home/.docker/config.json")))
        let environment = [
            "REGISTRY_AUTH_FILE": directory.file("auth.json"), "XDG_RUNTIME_DIR": directory.file("run"),
            "HOME": directory.file("home"),
        ]

        let first = try RegistryCredentials.lookup(registry: "reg.example:5000", environment: environment)
        #expect(first == RegistryCredentials(username: "fromfile", password: "p1", source: directory.file("auth.json")))
        let runtime = try RegistryCredentials.lookup(registry: "other.example", environment: environment)
        #expect(runtime?.username == "runtime")
        let hub = try RegistryCredentials.lookup(registry: "docker.io", repository: "library/alpine", environment: environment)
        #expect(hub?.username == "hubuser")
        #expect(hub?.password == "p4")
        #expect(try RegistryCredentials.lookup(registry: "unknown.example", environment: environment) == nil)
        // Without the variables nothing is found, whatever the process environment holds.
        #expect(try RegistryCredentials.lookup(registry: "reg.example:5000", environment: [:]) == nil)
    }

    @Test func mostSpecificRepositoryKeyWins() throws {
        let directory = try TemporaryDirectory()
        try Self.authJSON(["reg.example": ("host", "a"), "reg.example/team": ("team", "b"), "reg.example/team/app": ("app", "c")])
            .write(to: URL(fileURLWithPath: directory.file("auth.json")))
        let environment = ["REGISTRY_AUTH_FILE": directory.file("auth.json")]
        #expect(try RegistryCredentials.lookup(registry: "reg.example", repository: "team/app", environment: environment)?.username == "app")
        #expect(try RegistryCredentials.lookup(registry: "reg.example", repository: "team/other", environment: environment)?.username == "team")
        #expect(try RegistryCredentials.lookup(registry: "reg.example", repository: "solo", environment: environment)?.username == "host")
    }

    @Test func malformedAuthFileIsNamedInTheError() throws {
        let directory = try TemporaryDirectory()
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: directory.file("auth.json")))
        let error = #expect(throws: BoxstackError.self) {
            try RegistryCredentials.lookup(registry: "reg.example", environment: ["REGISTRY_AUTH_FILE": directory.file("auth.json")])
        }
        #expect(error?.code == .invalidData)
        #expect(error?.message.contains(directory.file("auth.json")) == true)

        try Data(#"{"auths":{"reg.example":{"auth":"!!!"}}}"#.utf8).write(to: URL(fileURLWithPath: directory.file("auth.json")))
        let badAuth = #expect(throws: BoxstackError.self) {
            try RegistryCredentials.lookup(registry: "reg.example", environment: ["REGISTRY_AUTH_FILE": directory.file("auth.json")])
        }
        #expect(badAuth?.message.contains("base64") == true)
    }
}
