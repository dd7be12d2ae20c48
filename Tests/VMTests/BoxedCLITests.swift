import BoxstackCore
import Foundation
import Guest
import Machine
import TestSupport
import Testing

/// The product as a user runs it: the `boxstack` binary, a boxed KIWI run, stashes, failures, signals.
@Suite(.serialized) struct BoxedCLITests {
    /// Stash a root tree on the host, rebuild an image from the stash alone in an offline box
    /// (`kiwi-ng system create`, real KIWI), keep the box's root as a second layer of the stash.
    @Test func stackbuildFromAStashRunsKiwiOfflineAndKeepsTheRoot() throws {
        let cli = try BoxstackCLI("cli-stackbuild")
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let target = cli.workspace.file("image")
        let result = try cli.run([
            "--box", "debian", "--offline", "--keep-root", "tiny-root",
            "--", "--stash", "tiny-root", "--target-dir", "image",
        ])
        #expect(result.status == .terminated(code: 0), "\(result.combined)")
        let files = try FileManager.default.contentsOfDirectory(atPath: target)
        let tarball = try #require(files.first { $0.hasPrefix("tiny-root.x86_64-1.0.0") && $0.hasSuffix(".tar.xz") }, "\(files)")
        let attributes = try FileManager.default.attributesOfItem(atPath: target + "/" + tarball)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o644)
        #expect((attributes[.ownerAccountID] as? NSNumber)?.uint32Value == getuid())
        let listing = try Subprocess.run(["tar", "-tJf", target + "/" + tarball]).check().output
        #expect(listing.contains("bin/busybox"))
        #expect(files.contains("boxstack.log"))
        let log = try String(contentsOfFile: target + "/boxstack.log", encoding: .utf8)
        #expect(log.contains("kiwi-ng system create"))
        // system create leaves the stacked root as it was: keeping it adds no layer.
        #expect(log.contains("tiny-root:latest is unchanged: 1 layer, no new layer"), "\(log.suffix(2000))")
        let stashes = try cli.run(["stash", "--list", "--json"]).check().output
        #expect(stashes.contains("\"layers\" : 1"), "\(stashes)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cli.runsDirectory).isEmpty)
    }

    @Test func aWrongKiwiOptionIsNamedAndStartsNoBox() throws {
        let cli = try BoxstackCLI("cli-badarg")
        let result = try cli.run(["--box", "debian", "--", "--description", ".", "--target-dir", "out", "--bogus-option"])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains("--bogus-option"))
        // Every start says "booting the debian box (", "restoring the debian box (" or "making a warm
        // image of the debian box (": none did.
        #expect(!result.errorOutput.contains("the debian box ("), "\(result.errorOutput)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: cli.runsDirectory)) ?? []).isEmpty)
    }

    @Test func qemuThatCannotStartIsReportedWithoutLeftovers() throws {
        let cli = try BoxstackCLI("cli-noqemu")
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let result = try cli.run([
            "--no-update-check", "--machine", "no-such-machine", "--", "--stash", "tiny-root", "--target-dir", "out",
        ])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains("QEMU could not start"), "\(result.errorOutput)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cli.runsDirectory).isEmpty)
    }

    @Test func aGuestThatNeverAnswersTimesOutWithTheConsoleTail() throws {
        let cli = try BoxstackCLI("cli-timeout")
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let result = try cli.run(["--no-update-check", "--timeout", "4", "--", "--stash", "tiny-root", "--target-dir", "out"])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains("--timeout"), "\(result.errorOutput)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cli.runsDirectory).isEmpty)
    }

    @Test func aGuestThatPanicsIsReportedWithTheConsoleTail() throws {
        let cli = try BoxstackCLI(
            "cli-panic", extraCatalog: try BoxstackCLI.catalogEntry(name: "panicking", cmdline: ["root=/dev/vda", "rw", "init=/bin/false"]))
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let result = try cli.run(["--box", "panicking", "--no-update-check", "--", "--stash", "tiny-root", "--target-dir", "out"])
        #expect(result.status != .terminated(code: 0))
        #expect(result.errorOutput.contains("stopped before its agent answered"), "\(result.errorOutput)")
        #expect(result.errorOutput.contains("panic"), "the console tail shows the panic: \(result.errorOutput)")
    }

    /// Ctrl-C while the box boots, and while KIWI runs in it (the teardown then has to end the running
    /// command: it once waited for it instead): the run ends with 130, its domain and directory gone.
    @Test(arguments: ["while booting", "while KIWI runs"])
    func sigintMidRunLeavesNothingBehind(moment: String) async throws {
        let cli = try BoxstackCLI("cli-sigint")
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let stderrPath = cli.workspace.file("stderr.txt")
        let process = try cli.start(
            ["--offline", "--", "--stash", "tiny-root", "--target-dir", "out"], stderrPath: stderrPath)
        let connection = try LibvirtConnection()
        let deadline = ContinuousClock.now + .seconds(300)
        let marker = moment == "while booting" ? " as boxstack-" : "running kiwi-ng"
        var domain: String?
        var text = ""
        while ContinuousClock.now < deadline, domain == nil || !text.contains(marker), process.status == nil {
            text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            // A cold boot names the run's domain, a warm start the slot's (libvirt keeps a saved name).
            if let range = text.range(of: " as boxstack-") {
                domain = String(text[text.index(after: range.lowerBound)...].dropFirst(3).prefix(while: { !$0.isWhitespace }))
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let name = try #require(domain, "the run never started a domain: \(text)")
        #expect(text.contains(marker), "\(text)")
        // The line is printed as the domain is being created.
        while ContinuousClock.now < deadline, try !connection.activeDomainNames().contains(name) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try connection.activeDomainNames().contains(name))
        kill(process.pid, SIGINT)
        // A teardown that hangs is killed after the bound, so that it fails the test instead of blocking it.
        #expect(process.finish(grace: .seconds(180)) == .terminated(code: 128 + SIGINT), "\(text)")
        #expect(try !connection.activeDomainNames().contains(name))
        let leftovers = FileManager.default.enumerator(atPath: cli.runsDirectory)?.allObjects ?? []
        let said = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        #expect(leftovers.isEmpty, "left in the runs directory: \(leftovers); the run said: \(said)")
    }

    /// `--box-debug` keeps the box after the build, prints how to get in, and gc spares it while it runs.
    @Test func boxDebugKeepsTheBoxAndPrintsHowToGetIn() throws {
        let cli = try BoxstackCLI("cli-debug")
        try cli.makeTinyRoot(at: cli.workspace.file("root"))
        try cli.run(["stash", "--root", cli.workspace.file("root")]).check()
        let result = try cli.run(["--box-debug", "--offline", "--", "--stash", "tiny-root", "--target-dir", "image"])
        #expect(result.status == .terminated(code: 0), "\(result.combined)")
        let sshLine = try #require(result.errorOutput.split(separator: "\n").first { $0.hasPrefix("ssh -i ") }, "\(result.errorOutput)")
        #expect(result.errorOutput.contains("virsh -c qemu:///session console boxstack-"))
        let runs = try FileManager.default.contentsOfDirectory(atPath: cli.runsDirectory)
        let id = try #require(runs.first)
        let connection = try LibvirtConnection()
        let domain = try #require(connection.domain(named: "boxstack-" + id))
        defer { try? domain.destroy() }
        #expect(domain.isActive)

        // The printed ssh command gets in, with the pinned host key.
        let login = try Subprocess.run([
            "sh", "-c", sshLine.replacingOccurrences(of: "ssh -i", with: "ssh -o BatchMode=yes -i") + " boxstack-agent hello",
        ])
        #expect(login.output.contains("agent-version=\(GuestAgent.protocolVersion)"), "\(login.errorOutput)")

        try cli.run(["gc"]).check()
        #expect(domain.isActive)
        #expect(FileManager.default.fileExists(atPath: cli.runsDirectory + "/" + id))
        try domain.destroy()
        try cli.run(["gc"]).check()
        #expect(!FileManager.default.fileExists(atPath: cli.runsDirectory + "/" + id))
    }
}
