import Boxed
import Boxes
import BoxstackCore
import Foundation
import Kiwi

/// What `boxes build` made.
public struct BoxBuildResult: Sendable, Encodable {
    public var box: String
    public var arch: String
    /// The directory the files and their `.sha256` files were published to.
    public var output: String
    /// File name to its digest, for the kernel, the initrd and the disk.
    public var files: [String: String]
    public var seconds: Int
}

/// Builds a box from its KIWI description as a boxed build inside a builder box (the debian box of the
/// same architecture), then publishes its kernel, initrd and qcow2 disk with a `.sha256` beside each and
/// puts the verified files into the box cache, so `--box NAME` boots it next without a download.
public enum BoxBuilder {
    /// Builds `recipe` for `arch` in the box `builder` describes. `workDirectory` (new, the user's)
    /// holds the description and KIWI's target while the build runs; it is removed after a success and
    /// kept after a failure, for its `target/boxstack.log`.
    public static func build(
        _ recipe: BoxRecipe, arch: String, builder: BoxSessionOptions, workDirectory: String, output: String, cache: BoxCache
    ) async throws -> BoxBuildResult {
        let started = ContinuousClock.now
        let entry = try recipe.box.architecture(arch)
        guard builder.image.architecture.name == arch else {
            throw BoxstackError(
                .invalidArgument,
                "a box for \(arch) is built in a builder box of that architecture, not in \(builder.image.name) (\(builder.image.architecture.name))."
            )
        }
        let description = workDirectory + "/description"
        let target = workDirectory + "/target"
        try FileManager.default.makeDirectory(workDirectory, mode: 0o700)
        try recipe.assemble(into: description)

        var configuration = BoxedBuildConfiguration(
            session: builder,
            request: try KiwiBuildRequest.parse(
                ["--description", description, "--target-dir", target], currentDirectory: workDirectory))
        configuration.profiles = recipe.profiles(for: arch)
        configuration.kiwiRuntimeConfiguration = kisRuntimeConfiguration
        configuration.delivery = .targetFiles
        let status = try await BoxedBuild.run(configuration)
        guard status == 0 else {
            throw BoxstackError(
                .guestFailed,
                "KIWI could not build the box \(recipe.box.name) for \(arch) (exit code \(status)); its log is \(target)/boxstack.log.")
        }

        let built = try KisResult(directory: target, box: recipe.box.name)
        builder.report("converting \((built.filesystem as NSString).lastPathComponent) to \(entry.disk)")
        let files = try publish(built, as: entry, into: output)
        var published = recipe.box
        published.architectures = [
            BoxArchitecture(
                arch: arch, source: .directory(output), sourceText: output, kernel: entry.kernel, initrd: entry.initrd,
                disk: entry.disk, cmdline: entry.cmdline, console: entry.console)
        ]
        _ = try await cache.fetch(published, arch: arch, progress: false)
        try? FileManager.default.removeItem(atPath: workDirectory)
        return BoxBuildResult(
            box: recipe.box.name, arch: arch, output: output, files: files,
            seconds: Int((ContinuousClock.now - started).components.seconds))
    }

    /// KIWI packs a kis build into an xz tarball as well, at xz's default level: under TCG that took longer
    /// than the rest of the image. The box needs only the unpacked files (`ResultDelivery.targetFiles`), so
    /// the tarball is made at the fastest level.
    static let kisRuntimeConfiguration = "xz:\n  - options: -0 --threads=0\n"

    /// Writes the catalog entry's three files and their `.sha256` files into `output`. Each is staged
    /// under a temporary name and committed, the checksum files last, so a reader never takes a
    /// half-written file for a published one.
    private static func publish(_ built: KisResult, as entry: BoxArchitecture, into output: String) throws -> [String: String] {
        try FileManager.default.makeDirectory(output)
        let placed = [(built.kernel, entry.kernel), (built.initrd, entry.initrd), (built.filesystem, entry.disk)]
        var files: [AtomicFile.Staged] = []
        var checksums: [AtomicFile.Staged] = []
        var digests: [String: String] = [:]
        do {
            for (source, name) in placed {
                let file = try AtomicFile.Staged(for: "\(output)/\(name)")
                files.append(file)
                if name == entry.disk {
                    try Subprocess.run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", source, file.temporaryPath]).check()
                } else {
                    try Subprocess.run(["cp", "--", source, file.temporaryPath]).check()
                }
                let digest = try ContentDigest.ofFile(file.temporaryPath).digest
                digests[name] = digest.description
                let checksum = try AtomicFile.Staged(for: "\(output)/\(name).sha256")
                checksums.append(checksum)
                try Data("\(digest.hex)  \(name)\n".utf8).write(to: URL(fileURLWithPath: checksum.temporaryPath))
            }
            for staged in files + checksums { try staged.commit() }
        } catch {
            for staged in files + checksums { staged.discard() }
            throw error
        }
        return digests
    }
}

/// The files KIWI's `kis` type leaves in its target directory: the kernel (NAME.ARCH-VERSION-KERNEL.kernel),
/// the initrd (NAME.ARCH-VERSION.initrd) and the root file system image, which KIWI names NAME.ARCH-VERSION
/// with no extension.
struct KisResult {
    var kernel: String
    var initrd: String
    var filesystem: String

    init(directory: String, box: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let requirement = "a box description needs <type image=\"kis\" filesystem=\"ext4\"/>, not compressed"
        func single(_ what: String, _ matches: (String) -> Bool) throws -> String {
            let found = names.filter(matches)
            guard found.count == 1 else {
                throw BoxstackError(
                    .invalidData,
                    "KIWI's build of the box \(box) left \(found.isEmpty ? "no" : "\(found.count)") \(what) in \(directory); \(requirement).")
            }
            return directory + "/" + found[0]
        }
        kernel = try single("kernel (*.kernel)") { $0.hasSuffix(".kernel") }
        initrd = try single("initrd (*.initrd)") { $0.hasSuffix(".initrd") }
        filesystem = String(initrd.dropLast(".initrd".count))
        var status = stat()
        guard stat(filesystem, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw BoxstackError(
                .invalidData,
                "KIWI's build of the box \(box) left no root file system image \((filesystem as NSString).lastPathComponent) beside its initrd in \(directory); \(requirement)."
            )
        }
    }
}
