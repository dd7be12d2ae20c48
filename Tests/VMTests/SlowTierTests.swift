import BoxstackCore
import Foundation
import TestSupport
import Testing

/// The seed's four use cases with full KIWI builds from Debian's repositories in the box.
/// Under TCG this takes 20-40 minutes, so it runs only with BOXSTACK_SLOW_TESTS=1 (Scripts/test
/// leaves the suite out otherwise rather than reporting it skipped).
@Suite(.serialized) struct SlowTier {
    /// Tests/Fixtures/tiny-debian built into `built` and kept as the stash tiny-debian:1, once per test
    /// run, in one workspace that every test starting from it shares: a full build costs 20-40 minutes
    /// under TCG. The tests that share it write to target directories of their own. A static is never
    /// released, so the workspace outlives the run; the next run removes it before making its own.
    static let tinyDebianBase = Result { () throws -> BoxstackCLI in
        TemporaryDirectory.removeLeftovers(of: "slow-tiny-debian")
        let cli = try BoxstackCLI("slow-tiny-debian")
        let built = try cli.run([
            "--keep-root", "tiny-debian:1",
            "--", "--description", repositoryRoot + "/Tests/Fixtures/tiny-debian", "--target-dir", "built",
        ])
        guard built.status == .terminated(code: 0) else {
            throw BoxstackError(.internalError, "the tiny-debian base build failed: \(built.errorOutput.suffix(3000))")
        }
        return cli
    }

    static func builtFiles(_ cli: BoxstackCLI) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("built"))
    }

    @Test func buildKeepRootRebuildOfflineAndDeriveWithAPackage() throws {
        let cli = try Self.tinyDebianBase.get()
        let fixtures = repositoryRoot + "/Tests/Fixtures"

        // 1. The base: built, its root kept.
        let builtFiles = try Self.builtFiles(cli)
        #expect(builtFiles.contains { $0.hasPrefix("tiny-debian.x86_64-1.0.0") && $0.hasSuffix(".tar.xz") }, "\(builtFiles)")
        let list = try cli.run(["stash", "--list", "--json"]).check().output
        #expect(list.contains("tiny-debian"))

        // 2. Rebuild from the stash alone, with no network in the box.
        let rebuilt = try cli.run([
            "--offline", "--", "--stash", "tiny-debian:1", "--target-dir", "rebuilt",
        ])
        #expect(rebuilt.status == .terminated(code: 0), "\(rebuilt.errorOutput.suffix(3000))")
        let rebuiltFiles = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("rebuilt"))
        let tarball = try #require(rebuiltFiles.first { $0.hasPrefix("tiny-debian.x86_64-1.0.0") && $0.hasSuffix(".tar.xz") })
        let listing = try Subprocess.run(["tar", "-tJf", cli.workspace.file("rebuilt/" + tarball)]).check().output
        #expect(listing.contains("bin/bash"))

        // 3. A derived build: the stash plus a description that adds a package.
        let derived = try cli.run([
            "--", "--stash", "tiny-debian:1", "--description", fixtures + "/tiny-debian-vim",
            "--target-dir", "derived",
        ])
        #expect(derived.status == .terminated(code: 0), "\(derived.errorOutput.suffix(3000))")
        let derivedFiles = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("derived"))
        let derivedTarball = try #require(derivedFiles.first { $0.hasPrefix("tiny-debian-vim.x86_64-1.0.0") && $0.hasSuffix(".tar.xz") })
        let derivedListing = try Subprocess.run(["tar", "-tJf", cli.workspace.file("derived/" + derivedTarball)]).check().output
        #expect(derivedListing.contains("usr/bin/vim.tiny"))
        #expect(derivedListing.contains("bin/bash"))
    }

    /// A derived description (Tests/Fixtures/tiny-debian-derived) on a stashed tiny Debian: less added,
    /// ca-certificates removed, the version 1.1.0, with its own config.sh and root/ overlay.
    @Test func derivedDescriptionAddsAndRemovesAPackageAndChangesTheVersion() throws {
        let cli = try Self.tinyDebianBase.get()

        // 1. The base: built, its root kept (its description is stored in image/config.xml).
        let builtFiles = try Self.builtFiles(cli)
        let builtPackages = try #require(builtFiles.first { $0.hasPrefix("tiny-debian.x86_64-1.0.0") && $0.hasSuffix(".packages") })
        #expect(try String(contentsOfFile: cli.workspace.file("built/" + builtPackages), encoding: .utf8).contains("ca-certificates|"))

        // 2. The derived build names its base itself: no --stash.
        let derived = try cli.run([
            "--", "--description", repositoryRoot + "/Tests/Fixtures/tiny-debian-derived", "--target-dir", "derived-description",
        ])
        #expect(derived.status == .terminated(code: 0), "\(derived.errorOutput.suffix(3000))")
        let merged = try String(contentsOfFile: cli.workspace.file("derived-description/merged-description.xml"), encoding: .utf8)
        #expect(merged.contains("<version>1.1.0</version>"), "\(merged)")
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("derived-description"))
        let tarball = try #require(files.first { $0.hasPrefix("tiny-debian.x86_64-1.1.0") && $0.hasSuffix(".tar.xz") }, "\(files)")
        let packagesFile = try #require(files.first { $0.hasPrefix("tiny-debian.x86_64-1.1.0") && $0.hasSuffix(".packages") }, "\(files)")
        let packages = try String(contentsOfFile: cli.workspace.file("derived-description/" + packagesFile), encoding: .utf8)
        #expect(packages.contains("\nless|") || packages.hasPrefix("less|"), "\(packages)")
        let image = cli.workspace.file("derived-description/" + tarball)
        // KIWI uninstalls with `apt-get remove`: the package's files go, its configuration files stay and
        // dpkg (and KIWI's .packages, which lists what dpkg knows) keeps it as removed.
        let status = try Subprocess.run(["tar", "-xJOf", image, "--wildcards", "*var/lib/dpkg/status"]).check().output
        let caCertificates = status.components(separatedBy: "\n\n").first { $0.hasPrefix("Package: ca-certificates\n") }
        #expect(caCertificates == nil || caCertificates!.contains("\nStatus: deinstall ok config-files\n"), "\(caCertificates ?? "")")
        let listing = try Subprocess.run(["tar", "-tJf", image]).check().output
        #expect(listing.contains("usr/bin/less"))
        #expect(listing.contains("bin/bash"))
        #expect(!listing.contains("usr/sbin/update-ca-certificates"))
        #expect(!listing.contains("usr/share/ca-certificates/"))
        #expect(listing.contains("etc/boxstack-overlay"))
        let marker = try Subprocess.run(["tar", "-xJOf", image, "--wildcards", "*etc/boxstack-derived"]).check().output
        #expect(marker == "tiny-debian-derived\n")
    }

    /// --kiwi-version installs that KIWI from PyPI in the box (so it needs the network) and builds with it.
    @Test func kiwiVersionInstallsThatKiwiWithPipBeforeTheBuild() throws {
        let cli = try BoxstackCLI("slow-kiwi-version")
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let result = try cli.run(["--kiwi-version", "9.24.57", "--", "--stash", "tiny-root", "--target-dir", "out"])
        #expect(result.status == .terminated(code: 0), "\(result.errorOutput.suffix(3000))")
        let log = try String(contentsOfFile: cli.workspace.file("out/boxstack.log"), encoding: .utf8)
        #expect(log.contains("KIWI (next generation) version 9.24.57"), "\(log.suffix(3000))")
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("out"))
        #expect(files.contains { $0.hasPrefix("tiny-root.x86_64-1.0.0") && $0.hasSuffix(".tar.xz") }, "\(files)")
    }
}
