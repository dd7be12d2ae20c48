import BoxstackCore
import Foundation
import TestSupport
import Testing

/// The debian box builds rpm-based images too: KIWI in it drives zypper (openSUSE) and dnf (Fedora).
/// Without those distributions' mirrors, each build reads an empty rpm-md repository made here with
/// createrepo_c, and KIWI's own error about the packages it cannot find comes back with its exit code.
@Suite(.serialized) struct RpmBuildTests {
    /// A description whose only repository is the empty rpm-md repository in its `repo/` directory.
    static func description(at directory: String, packageManager: String) throws {
        try FileManager.default.createDirectory(atPath: directory + "/repo", withIntermediateDirectories: true)
        try Subprocess.run(["createrepo_c", "--quiet", directory + "/repo"]).check()
        let config = """
            <?xml version="1.0" encoding="utf-8"?>
            <image schemaversion="7.5" name="rpm-wiring">
              <description type="system">
                <author>boxstack tests</author>
                <contact>tests@example.org</contact>
                <specification>A \(packageManager) build against an empty local rpm-md repository</specification>
              </description>
              <preferences>
                <version>1.0.0</version>
                <packagemanager>\(packageManager)</packagemanager>
                <rpm-check-signatures>false</rpm-check-signatures>
                <type image="tbz"/>
              </preferences>
              <repository type="rpm-md" alias="local" repository_gpgcheck="false" package_gpgcheck="false">
                <source path="this://repo"/>
              </repository>
              <packages type="image"><package name="boxstack-absent-image-package"/></packages>
              <packages type="bootstrap"><package name="boxstack-absent-bootstrap-package"/></packages>
            </image>
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/config.kiwi"))
    }

    @Test(arguments: ["zypper", "dnf"])
    func kiwiInTheDebianBoxReadsAnRpmRepositoryWith(packageManager: String) throws {
        let cli = try BoxstackCLI("rpm-\(packageManager)")
        try Self.description(at: cli.workspace.file("description"), packageManager: packageManager)
        let result = try cli.run([
            "--offline", "--", "--description", "description", "--target-dir", "out",
        ])
        // KIWI's exit code for a failed build, relayed as it is.
        #expect(result.status == .terminated(code: 1), "\(result.combined)")
        let log = (try? String(contentsOfFile: cli.workspace.file("out/boxstack.log"), encoding: .utf8)) ?? ""
        let text = result.combined + log
        #expect(text.contains("boxstack-absent-bootstrap-package"), "KIWI names the package the repository lacks: \(text)")
        #expect(text.contains(packageManager), "\(text)")
        #expect(!text.contains("command not found") && !text.contains("No such file or directory: '\(packageManager)'"), "\(text)")
    }
}
