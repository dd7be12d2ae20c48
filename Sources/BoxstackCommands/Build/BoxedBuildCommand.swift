import Boxed
import BoxstackCore
import Foundation
import Kiwi
import Machine
import Registry
import Sharing

/// The root command's job: validate, resolve the box, run the build in it.
struct BoxedBuildCommand {
    var box: BoxOptions
    var keepRoot: String?
    var kiwiArguments: [String]

    func run() async throws -> Int32 {
        // Arguments first: a wrong KIWI option must never cost a download or a boot.
        let request = try KiwiBuildRequest.parse(
            kiwiArguments, currentDirectory: FileManager.default.currentDirectoryPath)
        let session = try box.sessionOptions(image: try await box.cachedImage())
        var configuration = BoxedBuildConfiguration(session: session, request: request)
        configuration.kiwiType = box.type
        configuration.profiles = box.profile
        configuration.kiwiVersion = box.kiwiVersion
        configuration.keepRoot = keepRoot
        configuration.debug = box.boxDebug
        configuration.registryTimeouts = try RegistryTimeouts.fromEnvironment()
        return try await BoxedBuild.run(configuration)
    }
}

extension SharedPath {
    /// `--shared-path PATH`: an existing host path, made absolute, shared at the same path in the box.
    static func existing(_ path: String) throws -> SharedPath {
        let absolute = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
            .standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: absolute) else {
            throw BoxstackError(.notFound, "--shared-path \(path) does not exist.")
        }
        return SharedPath(hostPath: absolute)
    }
}

extension SharingChoice {
    var shareKind: ShareKind {
        switch self {
        case .ninePSharing: return .ninePee
        case .virtiofsSharing: return .virtiofs
        case .sshfsSharing: return .sshfs
        }
    }
}
