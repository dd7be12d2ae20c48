import BoxstackCore
import Foundation
import OCI
import Stash
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `exportStack` against `unpack`: extracting the exported tar with GNU tar (as the box does) must give
/// the same tree, entry by entry, as unpacking the same stashes.
@Suite struct StackExportTests {
    private let directory: TemporaryDirectory
    private let store: StashStore

    init() throws {
        directory = try TemporaryDirectory("stack-export")
        store = StashStore(directory: directory.file("store"))
    }

    private func path(_ relative: String) -> String { directory.file(relative) }

    /// Exports `references`, extracts the tar with GNU tar the way the box does, and expects the result
    /// to equal `unpack` of the same references.
    @discardableResult
    private func expectExportMatchesUnpack(
        _ references: [StashReference], comparingTimes: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (report: StackExportReport, tar: String, extracted: String) {
        let label = UUID().uuidString.prefix(8)
        let unpacked = path("unpacked-\(label)")
        try store.unpack(references, into: unpacked)
        let tar = path("stack-\(label).tar")
        let report = try store.exportStack(references, toTar: tar)
        let extracted = path("extracted-\(label)")
        try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
        try Subprocess.run([
            "tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-f", tar, "-C", extracted,
        ]).check()
        let differences = TreeFixture.differences(
            try TreeFixture.snapshot(unpacked, times: comparingTimes), try TreeFixture.snapshot(extracted, times: comparingTimes))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))", sourceLocation: sourceLocation)
        return (report, tar, extracted)
    }

    /// Puts an image made of uncompressed tar `layers` into the store as `name:latest`.
    private func storeImage(name: String, layers: [[(name: String, type: String, link: String, content: String)]]) throws {
        let layout = try OCILayout.create(at: store.layoutPath(name: name))
        var config = ImageConfig(architecture: "amd64")
        var descriptors: [Descriptor] = []
        for (index, members) in layers.enumerated() {
            let tar = path("\(name)-layer\(index).tar")
            try TreeFixture.writeTar(tar, members: members)
            let (digest, size) = try layout.importBlob(fromFile: tar)
            descriptors.append(Descriptor(mediaType: MediaType.layerTar, digest: digest, size: size))
            config.rootfs.diffIDs.append(digest)
        }
        let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
        let manifest = try layout.writeBlob(
            OCIJSON.encode(Manifest(config: configBlob, layers: descriptors)), mediaType: MediaType.imageManifest)
        try layout.setTag("latest", to: manifest)
    }

    @Test func layerNotInTreeOrderEqualsUnpack() throws {
        // GNU tar without --sort writes directory order, which is not the export's tree order.
        let tree = path("unsorted")
        try TreeFixture.shell(
            "for d in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do mkdir d$d; "
                + "for f in $(seq 1 100); do echo $f > d$d/f$((f * 7919 % 1000)); done; done",
            in: tree)
        let layer = path("unsorted.tar")
        try Subprocess.run(["tar", "-cf", layer, "-C", tree, "."]).check()
        let layout = try OCILayout.create(at: store.layoutPath(name: "unsorted"))
        let (digest, size) = try layout.importBlob(fromFile: layer)
        var config = ImageConfig(architecture: "amd64")
        config.rootfs.diffIDs = [digest]
        let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
        let manifest = Manifest(config: configBlob, layers: [Descriptor(mediaType: MediaType.layerTar, digest: digest, size: size)])
        try layout.setTag("latest", to: try layout.writeBlob(OCIJSON.encode(manifest), mediaType: MediaType.imageManifest))
        try expectExportMatchesUnpack([try StashReference(name: "unsorted")])
    }

    @Test func incrementalStashWithWhiteoutsEqualsUnpack() throws {
        let tree = path("tree")
        try TreeFixture.makeSampleTree(at: tree)
        try store.stash(root: tree, name: "sample-image")
        try TreeFixture.shell(
            "rm -r usr/lib/deep && rm etc/empty && echo changed > etc/hostname && mkdir -p new/dir && echo n > new/dir/f",
            in: tree)
        let result = try store.stash(root: tree, name: "sample-image")
        #expect(result.layerCount == 2)
        let (report, tar, _) = try expectExportMatchesUnpack([result.reference])
        #expect(report.layers == 2)
        #expect(report.hiddenEntries > 0)
        let names = try TreeFixture.tarEntries(tar)
        #expect(!names.contains { $0.contains(".wh.") }, "whiteouts must not reach the stacked tar")
        #expect(!names.contains { $0.hasPrefix("usr/lib/deep") })
        // Depth-first tree order: each directory right before its contents, as GNU tar needs to restore
        // directory times.
        let paths = names.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        #expect(paths == paths.sorted(by: TreeManifest.precedes))
    }

    @Test func directoryReplacedByFileAndFileByDirectory() throws {
        let tree = path("tree")
        try TreeFixture.shell("mkdir -p a/sub b && echo 1 > a/sub/x && echo 2 > a/y && echo 3 > b/file && echo 4 > c", in: tree)
        try store.stash(root: tree, name: "swap")
        try TreeFixture.shell("rm -r a && echo now-a-file > a && rm c && mkdir c && echo inside > c/z", in: tree)
        try store.stash(root: tree, name: "swap")
        let (_, _, extracted) = try expectExportMatchesUnpack([try StashReference(name: "swap")])
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(extracted))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
    }

    @Test func reAddingAfterAWhiteoutWorks() throws {
        let tree = path("tree")
        try TreeFixture.shell("mkdir -p d && echo old > d/f && echo keep > k", in: tree)
        try store.stash(root: tree, name: "readd")
        try TreeFixture.shell("rm -r d", in: tree)
        try store.stash(root: tree, name: "readd")
        try TreeFixture.shell("mkdir d && echo new > d/g", in: tree)
        let result = try store.stash(root: tree, name: "readd")
        #expect(result.layerCount == 3)
        let (_, _, extracted) = try expectExportMatchesUnpack([result.reference])
        #expect(try String(contentsOfFile: extracted + "/d/g", encoding: .utf8) == "new\n")
        #expect(!FileManager.default.fileExists(atPath: extracted + "/d/f"))
    }

    @Test func laterImagesOverwriteEarlierOnesAndApplyTheirWhiteouts() throws {
        let base = path("base")
        try TreeFixture.shell("mkdir -p etc data && echo base > etc/motd && echo keep > etc/keep && echo d > data/file", in: base)
        try store.stash(root: base, name: "base")
        let top = path("top")
        try TreeFixture.shell("mkdir -p etc data && echo top > etc/motd && echo d > data/file", in: top)
        try store.stash(root: top, name: "top")
        try TreeFixture.shell("rm -r data && echo extra > etc/extra", in: top)
        try store.stash(root: top, name: "top")

        let (_, _, extracted) = try expectExportMatchesUnpack([try StashReference(name: "base"), try StashReference(name: "top")])
        #expect(try String(contentsOfFile: extracted + "/etc/motd", encoding: .utf8) == "top\n")
        #expect(FileManager.default.fileExists(atPath: extracted + "/etc/keep"))
        #expect(FileManager.default.fileExists(atPath: extracted + "/etc/extra"))
        #expect(!FileManager.default.fileExists(atPath: extracted + "/data"))
    }

    @Test func opaqueDirectoryHidesOnlyLowerContents() throws {
        try storeImage(
            name: "opaque",
            layers: [
                [
                    ("d", "dir", "", ""), ("d/old", "file", "", "old"), ("d/sub", "dir", "", ""), ("d/sub/x", "file", "", "x"),
                    ("e", "dir", "", ""), ("e/stays", "file", "", "s"),
                ],
                [("d", "dir", "", ""), ("d/.wh..wh..opq", "file", "", ""), ("d/new", "file", "", "new")],
            ])
        let (_, _, extracted) = try expectExportMatchesUnpack([try StashReference(name: "opaque")], comparingTimes: false)
        #expect(FileManager.default.fileExists(atPath: extracted + "/d/new"))
        #expect(!FileManager.default.fileExists(atPath: extracted + "/d/old"))
        #expect(!FileManager.default.fileExists(atPath: extracted + "/d/sub"))
        #expect(FileManager.default.fileExists(atPath: extracted + "/e/stays"))
    }

    @Test func hardLinkWhoseTargetIsReplacedKeepsItsOwnLayersContent() throws {
        try storeImage(
            name: "links",
            layers: [
                [
                    ("a", "file", "", "original"), ("b", "hardlink", "a", ""), ("c", "hardlink", "a", ""),
                    ("x", "file", "", "kept"), ("y", "hardlink", "x", ""),
                ],
                [("a", "file", "", "replaced")],
            ])
        let (report, tar, extracted) = try expectExportMatchesUnpack([try StashReference(name: "links")], comparingTimes: false)
        #expect(report.hardlinksCopied == 1)
        #expect(try String(contentsOfFile: extracted + "/a", encoding: .utf8) == "replaced")
        #expect(try String(contentsOfFile: extracted + "/b", encoding: .utf8) == "original")
        // Links come after their targets.
        let names = try TreeFixture.tarEntries(tar)
        let position = { (name: String) in names.firstIndex(of: name) ?? -1 }
        #expect(position("y") > position("x"))
        #expect(position("c") > position("b"))
    }

    /// A higher layer's path needs its ancestors to be directories, so a lower layer's symlink on its way
    /// is hidden (not followed), in the unpack as in the export.
    @Test func aHigherLayersPathHidesALowerSymlinkOnItsWay() throws {
        try storeImage(
            name: "ancestor",
            layers: [[("usr", "dir", "", ""), ("usr/lib", "dir", "", ""), ("lib", "symlink", "usr/lib", "")], [("lib/own", "file", "", "mine")]])
        let (report, _, extracted) = try expectExportMatchesUnpack([try StashReference(name: "ancestor")], comparingTimes: false)
        #expect(report.hiddenEntries == 1)
        var info = stat()
        #expect(lstat(extracted + "/lib", &info) == 0 && info.st_mode & S_IFMT == S_IFDIR)
        #expect(try String(contentsOfFile: extracted + "/lib/own", encoding: .utf8) == "mine")
        #expect(!FileManager.default.fileExists(atPath: extracted + "/usr/lib/own"))
    }

    @Test(arguments: ["../escape", "a/../../escape", ".wh..", "dir/.wh."])
    func unsafeNamesAreRefusedAndNoTarIsLeft(name: String) throws {
        try storeImage(name: "hostile", layers: [[("ok", "file", "", "fine"), (name, "file", "", "bad")]])
        let tar = path("hostile.tar")
        let error = try #require(throws: BoxstackError.self) {
            try store.exportStack([try StashReference(name: "hostile")], toTar: tar)
        }
        #expect("\(error)".contains(name))
        #expect(!FileManager.default.fileExists(atPath: tar))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("hostile.tar") }
        #expect(leftovers.isEmpty)
    }

    @Test func absoluteNamesAreRelativeToTheRoot() throws {
        try storeImage(name: "absolute", layers: [[("/etc", "dir", "", ""), ("/etc/absolute", "file", "", "in"), ("./etc/dotted", "file", "", "d")]])
        let tar = path("absolute.tar")
        try store.exportStack([try StashReference(name: "absolute")], toTar: tar)
        let listing = try Subprocess.run(["tar", "-tf", tar]).check().output.split(separator: "\n").map(String.init)
        #expect(listing == ["etc/", "etc/absolute", "etc/dotted"])
    }

    @Test(arguments: [("../outside", "outside the tree"), ("later", "not an earlier entry of the same layer")])
    func hardLinksOutsideTheirLayerAreRefused(target: String, reason: String) throws {
        try storeImage(name: "links", layers: [[("link", "hardlink", target, ""), ("later", "file", "", "x")]])
        let tar = path("links.tar")
        let error = try #require(throws: BoxstackError.self) {
            try store.exportStack([try StashReference(name: "links")], toTar: tar)
        }
        #expect("\(error)".contains("\"link\"") && "\(error)".contains(reason), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: tar))
    }

    @Test(.enabled(if: Subprocess.which("umoci") != nil))
    func imageMadeByUmociWithWhiteouts() throws {
        let layout = store.layoutPath(name: "from-umoci")
        let bundle = path("bundle")
        try TreeFixture.makeUmociImageWithWhiteouts(layout: layout, bundle: bundle)

        let (_, _, extracted) = try expectExportMatchesUnpack([try StashReference(name: "from-umoci")])
        let differences = TreeFixture.differences(
            try TreeFixture.snapshot(bundle + "/rootfs", times: false), try TreeFixture.snapshot(extracted, times: false))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        #expect(!FileManager.default.fileExists(atPath: extracted + "/gone"))
    }

    /// `file(_:in:)` reads one file of the tree the export would write (a derived build's stored description).
    @Test func oneFileIsReadFromTheStackedTree() throws {
        try storeImage(
            name: "described",
            layers: [
                [("image", "dir", "", ""), ("image/config.xml", "file", "", "one"), ("etc", "dir", "", ""), ("etc/a", "file", "", "a")],
                [("image", "dir", "", ""), ("image/config.xml", "file", "", "two")],
            ])
        try storeImage(name: "top", layers: [[("image", "dir", "", ""), ("image/.wh.config.xml", "file", "", "")]])
        try storeImage(name: "linked", layers: [[("shared", "file", "", "shared"), ("config", "hardlink", "shared", "")]])
        let described = try StashReference(name: "described")
        #expect(try store.file("image/config.xml", in: [described]) == Data("two".utf8))
        #expect(try store.file("image/config.xml", in: [described, try StashReference(name: "top")]) == nil)
        #expect(try store.file("etc/missing", in: [described]) == nil)
        #expect(try store.file("config", in: [try StashReference(name: "linked")]) == Data("shared".utf8))
        let error = try #require(throws: BoxstackError.self) { try store.file("etc", in: [described]) }
        #expect("\(error)".contains("etc in described:latest is a directory"), "\(error)")
    }
}
