import Boxes
import BoxstackCore
import Foundation
import TestSupport
import Testing

@Suite("Box catalog")
struct BoxCatalogTests {
    static let shippedCatalog = repositoryRoot + "/Boxes/catalog.yaml"

    @Test func shippedCatalogHasTheFiveBoxes() throws {
        let catalog = try BoxCatalog.load(builtIn: Self.shippedCatalog, user: nil)
        #expect(catalog.boxes.map(\.name) == ["debian", "leap", "tumbleweed", "fedora", "ubuntu"])

        let debian = try catalog.box(named: "debian")
        #expect(debian.memory == 4 << 30 && debian.cpus == 2)
        let x86 = try debian.architecture("x86_64")
        #expect(x86.source == .directory(repositoryRoot + "/Boxes/build/debian-x86_64"))
        #expect(x86.disk == "debian-box.x86_64.qcow2")
        #expect(x86.cmdline == ["root=/dev/vda", "rw"])
        #expect(x86.console == nil && debian.console == "ttyS0")
        #expect(try debian.architecture("aarch64").console == "ttyAMA0")
        #expect(try debian.architecture("aarch64").kernel == "debian-box.aarch64.kernel")
    }

    @Test func builtInCatalogIsFoundAboveTheExecutable() throws {
        #expect(try BoxCatalog.builtInCatalogPath() == Self.shippedCatalog)
    }

    @Test func userCatalogOverridesBuiltInBoxesByName() throws {
        let temporary = try TemporaryDirectory()
        let user = temporary.file("mine.yaml")
        try Data(
            """
            boxes:
              - name: debian
                description: my own debian
                memory: 512M
                cpus: 1
                console: ttyS0
                arch:
                  x86_64: {source: "file:///srv/boxes/", kernel: k, initrd: i, disk: d.qcow2}
              - name: extra
                memory: 1G
                cpus: 1
                console: ttyS0
                arch:
                  x86_64: {source: mine/, kernel: k, initrd: i, disk: d.qcow2}
            """.utf8
        ).write(to: URL(fileURLWithPath: user))

        let catalog = try BoxCatalog.load(builtIn: Self.shippedCatalog, user: user)

        #expect(catalog.boxes.map(\.name) == ["debian", "leap", "tumbleweed", "fedora", "ubuntu", "extra"])
        let debian = try catalog.box(named: "debian")
        #expect(debian.description == "my own debian" && debian.memory == 512 << 20)
        #expect(debian.architectures.map(\.arch) == ["x86_64"])
        #expect(try debian.architecture("x86_64").source == .directory("/srv/boxes"))
        #expect(
            try catalog.box(named: "extra").architecture("x86_64").source
                == .directory(URL(fileURLWithPath: temporary.path + "/mine").standardizedFileURL.path))
        #expect(throws: BoxstackError.self) { try debian.architecture("aarch64") }
    }

    @Test func unknownBoxNamesTheKnownOnes() throws {
        let catalog = try BoxCatalog.load(builtIn: Self.shippedCatalog, user: nil)
        let error = try #require(throws: BoxstackError.self) { try catalog.box(named: "gentoo") }
        #expect(error.message.contains("gentoo") && error.message.contains("debian"))
    }

    struct BadCatalog: Sendable, CustomTestStringConvertible {
        var yaml: String
        var line: Int
        var field: String
        var testDescription: String { field }
    }

    static let validEntry = """
        boxes:
          - name: demo
            memory: 2G
            cpus: 2
            console: ttyS0
            arch:
              x86_64:
                source: https://example.org/boxes/
                kernel: k
                initrd: i
                disk: d.qcow2
        """

    @Test(arguments: [
        BadCatalog(yaml: validEntry.replacingOccurrences(of: "memory: 2G", with: "memory: lots"), line: 3, field: "boxes[0] (demo).memory"),
        BadCatalog(yaml: validEntry.replacingOccurrences(of: "cpus: 2", with: "cpus: two"), line: 4, field: "boxes[0] (demo).cpus"),
        BadCatalog(yaml: validEntry.replacingOccurrences(of: "    console: ttyS0\n", with: ""), line: 2, field: "boxes[0] (demo).console"),
        BadCatalog(
            yaml: validEntry.replacingOccurrences(of: "disk: d.qcow2", with: "disc: d.qcow2"), line: 11, field: "boxes[0] (demo).arch.x86_64.disc"),
        BadCatalog(
            yaml: validEntry.replacingOccurrences(of: "https://example.org", with: "ftp://example.org"), line: 8,
            field: "boxes[0] (demo).arch.x86_64.source"),
        BadCatalog(yaml: validEntry.replacingOccurrences(of: "x86_64:", with: "sparc:"), line: 7, field: "boxes[0] (demo).arch.sparc"),
        BadCatalog(
            yaml: validEntry.replacingOccurrences(of: "kernel: k", with: "kernel: ../k"), line: 9, field: "boxes[0] (demo).arch.x86_64.kernel"),
        BadCatalog(yaml: validEntry.replacingOccurrences(of: "boxes:", with: "box:"), line: 1, field: "(top level).box"),
    ])
    func malformedCatalogNamesFileLineAndField(bad: BadCatalog) throws {
        let error = try #require(throws: BoxstackError.self) {
            try BoxCatalog.parse(yaml: bad.yaml, path: "/etc/boxes.yaml")
        }
        #expect(error.code == .invalidData)
        #expect(error.message.hasPrefix("/etc/boxes.yaml, line \(bad.line), field \(bad.field):"), "\(error.message)")
    }

    @Test func yamlSyntaxErrorNamesFileAndLine() throws {
        let yaml = Self.validEntry.replacingOccurrences(of: "cpus: 2", with: "cpus: [2")
        let error = try #require(throws: BoxstackError.self) { try BoxCatalog.parse(yaml: yaml, path: "/etc/boxes.yaml") }
        #expect(error.message.hasPrefix("/etc/boxes.yaml, line "))
        #expect(error.message.contains("invalid YAML"))
    }

    @Test func catalogFileThatDoesNotExistIsNamed() throws {
        let error = try #require(throws: BoxstackError.self) { try BoxCatalog.parse(file: "/nonexistent/catalog.yaml") }
        #expect(error.message.contains("/nonexistent/catalog.yaml"))
    }
}

@Suite("Box sources")
struct BoxSourceTests {
    @Test(arguments: [
        ("obs://Virtualization:Appliances:Builder/images", "https://download.opensuse.org/repositories/Virtualization:/Appliances:/Builder/images/"),
        ("obs://openSUSE:Leap:15.6/standard/", "https://download.opensuse.org/repositories/openSUSE:/Leap:/15.6/standard/"),
        ("obs://home:user/images", "https://download.opensuse.org/repositories/home:/user/images/"),
        // KIWI folds an already-expanded ":/" back first, so both spellings map alike.
        ("obs://Virtualization:/Appliances/images", "https://download.opensuse.org/repositories/Virtualization:/Appliances/images/"),
    ])
    func obsMapsToTheDownloadServerLikeKIWI(source: String, url: String) throws {
        #expect(try BoxSource.parse(source, relativeTo: "/") == .web(try #require(URL(string: url))))
    }

    @Test func ociReferencesParse() throws {
        #expect(
            try BoxSource.parse("oci://127.0.0.1:5000/boxes/debian:1.0", relativeTo: "/")
                == .oci(registry: "127.0.0.1:5000", repository: "boxes/debian", reference: "1.0"))
        #expect(
            try BoxSource.parse("oci://localhost:5000/team/box", relativeTo: "/")
                == .oci(registry: "localhost:5000", repository: "team/box", reference: "latest"))
    }

    @Test func aBoxWithoutASourceSaysHowToGetIt() async throws {
        let catalog = try BoxCatalog.load(builtIn: repositoryRoot + "/Boxes/catalog.yaml", user: nil)
        for name in ["leap", "tumbleweed", "fedora", "ubuntu"] {
            let box = try catalog.box(named: name)
            #expect(box.architectures.allSatisfy { $0.source == nil }, "\(name) names a source that does not publish it")
            let cache = BoxCache(directory: try TemporaryDirectory("nosource").path)
            let error = await #expect(throws: BoxstackError.self) { try await cache.fetch(box, arch: "x86_64", progress: false) }
            #expect(error?.message.contains("boxstack boxes build \(name) --arch x86_64") == true)
            #expect(error?.message.contains("BOXSTACK_CATALOG") == true)
        }
    }

    @Test func otherSchemesAndPaths() throws {
        #expect(try BoxSource.parse("https://host/path", relativeTo: "/") == .web(try #require(URL(string: "https://host/path/"))))
        #expect(try BoxSource.parse("file:///srv/b/", relativeTo: "/x") == .directory("/srv/b"))
        #expect(try BoxSource.parse("build/debian-x86_64/", relativeTo: "/repo/Boxes") == .directory("/repo/Boxes/build/debian-x86_64"))
        #expect(throws: BoxstackError.self) { try BoxSource.parse("obs://justaproject", relativeTo: "/") }
        #expect(throws: BoxstackError.self) { try BoxSource.parse("file://relative/dir", relativeTo: "/") }
    }
}
