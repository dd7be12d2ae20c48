import BoxstackCore
import Foundation
import TestSupport
import Testing

@testable import BoxBuilding

/// `boxes build` finds the kernel, initrd and root file system among everything KIWI's `kis` type
/// leaves in its target directory, named as KIWI names them.
struct KisResultTests {
    static let kiwiLeaves = [
        "debian-box.x86_64-1.0.0-6.1.0-28-amd64.kernel", "debian-box.x86_64-1.0.0.initrd", "debian-box.x86_64-1.0.0",
        "debian-box.x86_64-1.0.0.md5", "debian-box.x86_64-1.0.0.tar.xz", "debian-box.x86_64-1.0.0.packages",
        "debian-box.x86_64-1.0.0.changes", "debian-box.x86_64-1.0.0.verified", "boxstack.log",
    ]

    static func target(with names: [String]) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory("kis-result")
        for name in names { FileManager.default.createFile(atPath: directory.file(name), contents: Data(name.utf8)) }
        return directory
    }

    @Test func findsTheKernelInitrdAndTheFileSystemWithoutAnExtension() throws {
        let directory = try Self.target(with: Self.kiwiLeaves)
        let result = try KisResult(directory: directory.path, box: "debian")
        #expect(result.kernel == directory.file("debian-box.x86_64-1.0.0-6.1.0-28-amd64.kernel"))
        #expect(result.initrd == directory.file("debian-box.x86_64-1.0.0.initrd"))
        #expect(result.filesystem == directory.file("debian-box.x86_64-1.0.0"))
    }

    @Test(arguments: [
        ("debian-box.x86_64-1.0.0", "no root file system image debian-box.x86_64-1.0.0"),
        ("debian-box.x86_64-1.0.0.initrd", "no initrd (*.initrd)"),
        ("debian-box.x86_64-1.0.0-6.1.0-28-amd64.kernel", "no kernel (*.kernel)"),
    ])
    func aMissingPartIsNamed(missing: String, message: String) throws {
        let directory = try Self.target(with: Self.kiwiLeaves.filter { $0 != missing })
        let error = #expect(throws: BoxstackError.self) { try KisResult(directory: directory.path, box: "debian") }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("<type image=\"kis\" filesystem=\"ext4\"/>") == true)
    }
}
