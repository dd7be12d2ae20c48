import BoxstackCore
import Foundation

/// A user name and password for a registry, and where they came from (for error messages).
public struct RegistryCredentials: Sendable, Equatable {
    public var username: String
    public var password: String
    /// The auth file the credentials were read from, or nil when given directly.
    public var source: String?

    public init(username: String, password: String, source: String? = nil) {
        self.username = username
        self.password = password
        self.source = source
    }

    /// The auth files searched, in order: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `$HOME/.docker/config.json`. Only variables present in `environment` contribute.
    public static func authFiles(environment: [String: String]) -> [String] {
        var files: [String] = []
        if let file = environment["REGISTRY_AUTH_FILE"], !file.isEmpty { files.append(file) }
        if let runtime = environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") {
            files.append(runtime + "/containers/auth.json")
        }
        if let home = environment["HOME"], home.hasPrefix("/") { files.append(home + "/.docker/config.json") }
        return files
    }

    /// Finds credentials for `registry` (and optionally `repository`) in the auth files of `environment`.
    ///
    /// The first file with a matching `auths` entry wins. Within a file the most specific key wins:
    /// `registry/namespace/repo`, then `registry/namespace`, then `registry` (containers-auth.json rules),
    /// with Docker's `https://index.docker.io/v1/` and `http(s)://host` forms also accepted.
    /// Missing files are skipped; an unreadable or malformed file is an error naming it.
    public static func lookup(
        registry: String, repository: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> RegistryCredentials? {
        for file in authFiles(environment: environment) where FileManager.default.fileExists(atPath: file) {
            if let found = try lookup(registry: registry, repository: repository, inFile: file) { return found }
        }
        return nil
    }

    /// Finds credentials for `registry` in one auth file (`{"auths": {KEY: {"auth": base64(user:password)}}}`).
    public static func lookup(registry: String, repository: String?, inFile file: String) throws
        -> RegistryCredentials?
    {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw BoxstackError(.permission, "cannot read the registry auth file \(file); check its permissions.", cause: error)
        }
        let parsed: AuthFile
        do {
            parsed = try JSONDecoder().decode(AuthFile.self, from: data)
        } catch {
            throw BoxstackError(
                .invalidData, "the registry auth file \(file) is not valid JSON with an \"auths\" map; fix or remove it.",
                cause: error)
        }
        guard let auths = parsed.auths else { return nil }
        var entriesByKey: [String: AuthEntry] = [:]
        for (key, entry) in auths { entriesByKey[normalizedKey(key)] = entry }
        for key in candidateKeys(registry: registry, repository: repository) {
            guard let entry = entriesByKey[key] else { continue }
            if let credentials = try entry.credentials(file: file, key: key) { return credentials }
        }
        return nil
    }

    /// Keys to try, most specific first.
    static func candidateKeys(registry: String, repository: String?) -> [String] {
        let hosts =
            registry == ImageReference.dockerHub
            ? [ImageReference.dockerHub, "index.docker.io", "registry-1.docker.io"] : [registry]
        var keys: [String] = []
        for host in hosts {
            if let repository {
                var components = repository.split(separator: "/").map(String.init)
                while !components.isEmpty {
                    keys.append(host + "/" + components.joined(separator: "/"))
                    components.removeLast()
                }
            }
        }
        return keys + hosts
    }

    /// Strips a scheme and Docker's `/v1/` or `/v2/` suffix: `https://index.docker.io/v1/` → `index.docker.io`.
    static func normalizedKey(_ key: String) -> String {
        var text = Substring(key)
        for scheme in ["https://", "http://"] where text.hasPrefix(scheme) { text = text.dropFirst(scheme.count) }
        while text.hasSuffix("/") { text = text.dropLast() }
        for suffix in ["/v1", "/v2"] where text.hasSuffix(suffix) { text = text.dropLast(suffix.count) }
        return String(text)
    }

    private struct AuthFile: Decodable {
        var auths: [String: AuthEntry]?
    }

    private struct AuthEntry: Decodable {
        var auth: String?
        var username: String?
        var password: String?

        func credentials(file: String, key: String) throws -> RegistryCredentials? {
            if let auth, !auth.isEmpty {
                guard let decoded = Data(base64Encoded: auth), let text = String(data: decoded, encoding: .utf8),
                    let colon = text.firstIndex(of: ":")
                else {
                    throw BoxstackError(
                        .invalidData,
                        "the \"auth\" value for \(key) in \(file) is not base64 of \"user:password\"; log in again.")
                }
                return RegistryCredentials(
                    username: String(text[..<colon]), password: String(text[text.index(after: colon)...]),
                    source: file)
            }
            if let username, let password { return RegistryCredentials(username: username, password: password, source: file) }
            return nil
        }
    }
}
