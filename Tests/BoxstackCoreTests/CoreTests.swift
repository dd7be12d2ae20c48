import BoxstackCore
import Foundation
import Testing

@Suite struct CoreTests {
    @Test(arguments: [("4G", Int64(4) << 30), ("512M", Int64(512) << 20), ("8GiB", Int64(8) << 30), ("1024", Int64(1024))])
    func parsesSizesWithUnits(text: String, bytes: Int64) {
        #expect(ByteCount.parse(text) == bytes)
    }

    @Test(arguments: ["", "G", "-1G", "4X", "0"])
    func rejectsBadSizes(text: String) {
        #expect(ByteCount.parse(text) == nil)
    }

    @Test func digestOfKnownData() throws {
        #expect(
            ContentDigest.of(Data("abc".utf8)).description
                == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(ContentDigest("sha256:XYZ") == nil)
    }

    @Test func subprocessReportsExitStatus() throws {
        let result = try Subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(result.output == "out\n")
        #expect(result.errorOutput == "err\n")
        #expect(result.status == .terminated(code: 3))
        #expect(throws: BoxstackError.self) { try result.check() }
    }

    @Test func pathsFollowOverrides() {
        let paths = Paths(environment: ["HOME": "/home/u", "BOXSTACK_CACHE_DIR": "/c"])
        #expect(paths.cacheDirectory == "/c")
        #expect(paths.stashDirectory == "/home/u/.local/share/boxstack/stashes")
        #expect(Paths(environment: ["HOME": "/home/u", "XDG_CACHE_HOME": "/x"]).cacheDirectory == "/x/boxstack")
    }

    @Test func aMissingProgramIsNamedWithItsDebianPackage() throws {
        let error = #expect(throws: BoxstackError.self) {
            _ = try ChildProcess(["/nonexistent/qemu-img", "info"], standardInput: 0, standardOutput: 1, standardError: 2)
        }
        #expect(error?.message.contains("apt-get install qemu-utils") == true, "\(String(describing: error))")
    }
}
