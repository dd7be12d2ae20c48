import BoxstackCore
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension SlowTier {
    /// The seed's "turn a container into a VM image", with Debian: a container image made outside
    /// boxstack (mmdebstrap's minbase root, packed by umoci, pushed by skopeo) is served by a
    /// `docker-registry` with basic auth; boxstack pulls it with `--from-registry`, builds
    /// Tests/Fixtures/debian-container-vm (kernel, dracut, grub, a user) on it as an oem disk, and the
    /// disk then boots under qemu-system-x86_64 (TCG) to a login prompt on its serial console.
    @Test func containerFromARegistryBecomesABootableDiskImage() throws {
        var cli = try BoxstackCLI("slow-container-vm")
        let registry = try RegistryServer(authentication: .basic(username: "builder", password: "container-to-vm"))
        defer { registry.stop() }

        // 1. The container image, made and pushed with the tools people use.
        let mirror = ProcessInfo.processInfo.environment["BOXSTACK_DEBIAN_MIRROR"] ?? "http://deb.debian.org/debian"
        try Subprocess.run([
            "mmdebstrap", "--mode=unshare", "--variant=minbase", "bookworm", cli.workspace.file("root.tar"), mirror,
        ]).check()
        let layout = cli.workspace.file("container")
        try Subprocess.run(["umoci", "init", "--layout", layout]).check()
        try Subprocess.run(["umoci", "new", "--image", layout + ":bookworm"]).check()
        try Subprocess.run(["umoci", "raw", "add-layer", "--image", layout + ":bookworm", cli.workspace.file("root.tar")]).check()
        let authFile = cli.workspace.file("auth.json")
        try Subprocess.run([
            "skopeo", "login", "--tls-verify=false", "--authfile", authFile, "-u", "builder", "-p", "container-to-vm",
            registry.address,
        ]).check()
        try Subprocess.run([
            "skopeo", "copy", "--dest-tls-verify=false", "--authfile", authFile, "oci:\(layout):bookworm",
            "docker://\(registry.address)/containers/debian:bookworm",
        ]).check()
        cli.environment["REGISTRY_AUTH_FILE"] = authFile

        // 2. The boxed stackbuild: the container as the stash, the description on top.
        let built = try cli.run([
            "--", "--stash", "debian:bookworm", "--from-registry", registry.address + "/containers",
            "--description", repositoryRoot + "/Tests/Fixtures/debian-container-vm", "--target-dir", "disk",
        ])
        #expect(built.status == .terminated(code: 0), "\(built.errorOutput.suffix(3000))")
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.workspace.file("disk"))
        // KIWI's result bundle compresses the disk (NAME.raw.xz, with its .sha256).
        let compressed = try #require(files.first { $0.hasPrefix("debian-vm.x86_64-1.0.0") && $0.hasSuffix(".raw.xz") }, "\(files)")
        try Subprocess.run(["xz", "-dk", cli.workspace.file("disk/" + compressed)]).check()
        let disk = String(compressed.dropLast(".xz".count))
        let packagesFile = try #require(files.first { $0.hasPrefix("debian-vm.x86_64-1.0.0") && $0.hasSuffix(".packages") })
        let packages = try String(contentsOfFile: cli.workspace.file("disk/" + packagesFile), encoding: .utf8)
        #expect(packages.contains("linux-image-amd64|") && packages.contains("grub-pc-bin|"), "\(packages)")

        // 3. The disk boots: the login prompt on the serial console.
        let serial = cli.workspace.file("serial.log")
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let qemu = try ChildProcess(
            [
                "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "1024", "-smp", "1", "-display", "none",
                "-monitor", "none", "-nic", "none", "-serial", "file:" + serial,
                "-drive", "file=\(cli.workspace.file("disk/" + disk)),format=raw,if=virtio,snapshot=on",
            ], standardInput: null, standardOutput: null, standardError: null)
        defer { qemu.finish(grace: .seconds(0)) }
        // Ends when the prompt shows or qemu ends; the bound only stops a guest that hangs.
        let deadline = ContinuousClock.now + .seconds(1800)
        var console = ""
        while qemu.status == nil && ContinuousClock.now < deadline {
            console = (try? String(contentsOfFile: serial, encoding: .utf8)) ?? ""
            if console.contains(" login:") { break }
            Thread.sleep(forTimeInterval: 1)
        }
        #expect(console.contains(" login:"), "\(console.suffix(3000))")
    }
}
