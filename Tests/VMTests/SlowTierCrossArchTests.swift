import BoxstackCore
import Foundation
import TestSupport
import Testing

extension SlowTier {
    /// A full KIWI `system build` of Tests/Fixtures/tiny-debian in the aarch64 box on this x86_64 host,
    /// as this non-root user, with `--aarch64` as the only box option: the image's programs and C
    /// library are aarch64 ELF files.
    @Test func aarch64BoxBuildsTinyDebianForArm64() throws {
        let cli = try BoxstackCLI("slow-aarch64", aarch64: true)
        let built = try cli.run([
            "--aarch64", "--", "--description", repositoryRoot + "/Tests/Fixtures/tiny-debian", "--target-dir", "built",
        ])
        #expect(built.status == .terminated(code: 0), "\(built.errorOutput.suffix(3000))")
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("built"))
        let tarball = try #require(files.first { $0.hasPrefix("tiny-debian.aarch64-1.0.0") && $0.hasSuffix(".tar.xz") }, "\(files)")
        for member in ["*usr/bin/bash", "*usr/lib/aarch64-linux-gnu/libc.so.6"] {
            // e_machine, two bytes at offset 18 of the ELF header: 0x00b7 is EM_AARCH64.
            let machine = try Subprocess.run(
                ["sh", "-c", "tar -xJOf \"$1\" --wildcards \"$2\" | od -An -tx1 -j18 -N2", "sh", tarball, member],
                currentDirectory: cli.workspace.file("built")
            ).check().output
            #expect(machine.trimmingCharacters(in: .whitespacesAndNewlines) == "b7 00", "\(member): \(machine)")
        }
    }
}
