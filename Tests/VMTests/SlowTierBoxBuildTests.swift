import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

extension SlowTier {
    /// `boxes build` of the debian box's own KIWI description (Boxes/debian/config.kiwi) inside the
    /// debian box, as this non-root user: the box it makes boots, answers hello and runs KIWI.
    @Test func boxesBuildMakesABootableBoxFromItsKiwiDescription() throws {
        // The built box gets a name of its own, so the test box in the shared cache stays as it is.
        let entry = try BoxstackCLI.catalogEntry(name: "kiwi-debian")
            .replacingOccurrences(of: #"\n *source: [^\n]*"#, with: "", options: .regularExpression)
            .replacingOccurrences(of: "debian-box.x86_64", with: "kiwi-debian-box.x86_64")
        let cli = try BoxstackCLI("slow-box-build", extraCatalog: entry)
        // Its recipe is the debian box's, beside the test catalog as a catalog's recipes are.
        try FileManager.default.createSymbolicLink(atPath: cli.workspace.file("kiwi-debian"), withDestinationPath: repositoryRoot + "/Boxes/debian")
        defer { _ = try? cli.run(["boxes", "rm", "kiwi-debian"]) }

        let build = try cli.run(["boxes", "build", "kiwi-debian", "--output", "published", "--json"])
        #expect(build.status == .terminated(code: 0), "\(build.errorOutput.suffix(4000))")
        let published = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("published")).sorted()
        for name in ["kiwi-debian-box.x86_64.kernel", "kiwi-debian-box.x86_64.initrd", "kiwi-debian-box.x86_64.qcow2"] {
            #expect(published.contains(name) && published.contains(name + ".sha256"), "\(published)")
        }
        // Each .sha256 names its file as sha256sum writes it, so sha256sum itself checks them.
        for sum in published where sum.hasSuffix(".sha256") {
            let check = try Subprocess.run(["sha256sum", "--check", "--strict", sum], currentDirectory: cli.workspace.file("published"))
            #expect(check.status == .terminated(code: 0), "\(sum): \(check.output)\(check.errorOutput)")
        }

        // Booted from the cache, where the build put it: the agent answers and KIWI runs through it.
        let run = try cli.run(["--cold", "--no-update-check", "boxes", "run", "kiwi-debian", "--exec", "boxstack-agent hello && kiwi-ng --version"])
        #expect(run.status == .terminated(code: 0), "\(run.combined.suffix(3000))")
        #expect(run.output.contains("agent-version=\(GuestAgent.protocolVersion)"), "\(run.output)")
        #expect(run.output.contains("KIWI (next generation) version"), "\(run.output)")
    }
}
