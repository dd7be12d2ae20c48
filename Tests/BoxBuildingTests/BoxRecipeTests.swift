import BoxBuilding
import Boxes
import BoxstackCore
import Foundation
import TestSupport
import Testing

/// The description `boxes build` hands KIWI: the recipe beside the catalog plus what every box carries.
struct BoxRecipeTests {
    /// The repository's own Boxes/ (catalog, recipes, agent), found from this source file.
    static let boxes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Boxes").path

    static func catalogBox(_ name: String) throws -> BoxDefinition {
        try #require(try BoxCatalog.parse(file: boxes + "/catalog.yaml").first { $0.name == name })
    }

    @Test(arguments: ["debian", "leap", "tumbleweed", "fedora", "ubuntu"])
    func everyCatalogBoxHasARecipeThatAssemblesWithTheSharedAgent(name: String) throws {
        let recipe = try BoxRecipe(box: try Self.catalogBox(name), agentDirectory: Self.boxes + "/agent")
        let workspace = try TemporaryDirectory("recipe-\(name)")
        let target = workspace.file("description")
        try recipe.assemble(into: target)
        let manager = FileManager.default
        #expect(manager.isExecutableFile(atPath: target + "/root/usr/local/bin/boxstack-agent"))
        #expect(manager.isExecutableFile(atPath: target + "/config.sh"))
        #expect(manager.fileExists(atPath: target + "/root/etc/systemd/system/boxstack-seed.service"))
        #expect(manager.fileExists(atPath: target + "/root/etc/ssh/sshd_config.d/boxstack.conf"))
        #expect(manager.fileExists(atPath: target + "/root/etc/dracut.conf.d/90-boxstack.conf"))
        // The agent is the one file every box shares, not a copy kept per recipe.
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: target + "/root/usr/local/bin/boxstack-agent"))
                == Data(contentsOf: URL(fileURLWithPath: Self.boxes + "/agent/boxstack-agent")))
        #expect(!manager.fileExists(atPath: Self.boxes + "/\(name)/root/usr/local/bin/boxstack-agent"))
    }

    /// The initrd of a box built by KIWI (dracut) carries exactly the drivers of the bootstrapped debian
    /// box's initrd (initramfs-tools): the two lists are kept in two formats and must not drift apart.
    @Test func theDracutDriversAreTheBootstrappedBoxsInitrdModules() throws {
        let modules = try String(contentsOfFile: Self.boxes + "/debian/root/etc/initramfs-tools/modules", encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let dracut = try String(contentsOfFile: Self.boxes + "/agent/kiwi-overlay/etc/dracut.conf.d/90-boxstack.conf", encoding: .utf8)
        let driversLine = try #require(dracut.split(separator: "\n").first { $0.hasPrefix("drivers+=") })
        let drivers = driversLine.dropFirst("drivers+=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
            .split(separator: " ").map(String.init)
        #expect(drivers == modules)
    }

    @Test func theArchitectureProfileIsChosenWhenTheDescriptionHasOne() throws {
        let debian = try BoxRecipe(box: try Self.catalogBox("debian"), agentDirectory: Self.boxes + "/agent")
        #expect(debian.profiles(for: "aarch64") == ["aarch64"])
        let leap = try BoxRecipe(box: try Self.catalogBox("leap"), agentDirectory: Self.boxes + "/agent")
        #expect(leap.profiles(for: "x86_64") == [])
    }

    @Test func aBoxWithoutARecipeSaysWhereItWasLookedFor() throws {
        let workspace = try TemporaryDirectory("recipe-missing")
        let catalog = workspace.file("catalog.yaml")
        try Data(
            """
            boxes:
              - name: homemade
                description: a box without a recipe
                memory: 1G
                cpus: 1
                console: ttyS0
                arch:
                  x86_64:
                    kernel: k
                    initrd: i
                    disk: d
                    cmdline: [root=/dev/vda]
            """.utf8
        ).write(to: URL(fileURLWithPath: catalog))
        let box = try #require(try BoxCatalog.parse(file: catalog).first)
        let error = try #require(throws: BoxstackError.self) { try BoxRecipe(box: box, agentDirectory: Self.boxes + "/agent") }
        #expect(error.code == .notFound)
        #expect(error.message.contains(workspace.file("homemade")), "\(error.message)")
    }
}
