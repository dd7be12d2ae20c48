import BoxstackCore
import Foundation
import OCI
import Stash
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Layers written byte by byte (`RawTar`) that try to reach outside the unpack root: through
/// symlinks (absolute, climbing, chained, across layers, below missing directories, below paths
/// longer than PATH_MAX), whiteouts and opaque markers, hard links and odd names. Each test keeps
/// canaries next to the root and checks afterwards that nothing outside the root changed. Run as
/// root and as an ordinary user (`Scripts/test` runs this tier as a user; root runs it locally, and
/// `HostileUnpackCommandTests` repeats cases as root in a user namespace).
@Suite struct HostileLayerTests {
    private let directory: TemporaryDirectory
    private let store: StashStore
    /// A directory next to the root, with a canary file in it.
    private let outside: String
    private let root: String

    init() throws {
        directory = try TemporaryDirectory("hostile")
        store = StashStore(directory: directory.file("store"))
        outside = directory.file("outside")
        root = directory.file("root")
        try FileManager.default.createDirectory(atPath: outside + "/sub", withIntermediateDirectories: true)
        try "original".write(toFile: outside + "/victim", atomically: false, encoding: .utf8)
        try "kept".write(toFile: outside + "/sub/other", atomically: false, encoding: .utf8)
        try "next to the root".write(toFile: directory.file("neighbour"), atomically: false, encoding: .utf8)
    }

    // MARK: Fixtures

    /// Stores `layers` as the image `name:latest` (gzip layers with their real diffIDs when `gzip`).
    private func storeImage(_ name: String, _ layers: [[RawTar.Member]], gzip: Bool = false) throws {
        try RawImage.store(layers, at: store.layoutPath(name: name), gzip: gzip, scratch: directory.path)
    }

    /// Everything outside the root and the store: path → type, size, content.
    private func outsideState() throws -> [String: String] {
        var state: [String: String] = [:]
        let base = directory.path
        guard let walker = FileManager.default.enumerator(atPath: base) else { return state }
        while let relative = walker.nextObject() as? String {
            if relative == "root" || relative.hasPrefix("root/") || relative == "store" || relative.hasPrefix("store/") {
                walker.skipDescendants()
                continue
            }
            var info = stat()
            guard lstat(base + "/" + relative, &info) == 0 else { continue }
            let content = info.st_mode & S_IFMT == S_IFREG ? (try? String(contentsOfFile: base + "/" + relative, encoding: .utf8)) ?? "?" : ""
            state[relative] = "\(info.st_mode) \(info.st_size) \(info.st_nlink) \(content)"
        }
        return state
    }

    /// Unpacks `name` into the root; returns the error, if any, after checking nothing outside changed.
    @discardableResult
    private func unpackContained(_ name: String) throws -> BoxstackError? {
        let before = try outsideState()
        var failure: BoxstackError?
        do { try store.unpack([try StashReference(name: name)], into: root) } catch let error as BoxstackError { failure = error }
        #expect(try outsideState() == before, "something outside the root changed")
        #expect(try String(contentsOfFile: outside + "/victim", encoding: .utf8) == "original")
        return failure
    }

    private func expectRefused(_ name: String, naming entry: String) throws {
        let error = try #require(try unpackContained(name))
        #expect(error.message.contains(Terminal.quoted(entry)), "\(error.message)")
    }

    private func file(_ relative: String) -> String? { try? String(contentsOfFile: root + "/" + relative, encoding: .utf8) }

    // MARK: Symlinks

    @Test func absoluteSymlinkBelowAMissingDirectoryStaysInside() throws {
        try storeImage("missing", [[RawTar.Member("a", .symlink, link: outside), RawTar.Member("a/new/deeper/evil", content: "x")]])
        try unpackContained("missing")
        #expect(!FileManager.default.fileExists(atPath: outside + "/new"))
    }

    @Test func climbingSymlinkResolvesAtTheRoot() throws {
        // a -> the root (clamped), so a/<outside's absolute path>/evil is created inside the root.
        let climb = String(repeating: "../", count: 40)
        let inner = String(outside.dropFirst()) + "/evil"
        try storeImage("climb", [[RawTar.Member("a", .symlink, link: climb), RawTar.Member("a/" + inner, content: "inside")]])
        #expect(try unpackContained("climb") == nil)
        #expect(file(inner) == "inside")
        #expect(!FileManager.default.fileExists(atPath: outside + "/evil"))
    }

    @Test func relativeSymlinkOutsideIsRefused() throws {
        try storeImage(
            "relative", [[RawTar.Member("escape", .symlink, link: "../../outside"), RawTar.Member("escape/victim", content: "overwritten")]])
        try expectRefused("relative", naming: "escape/victim")
    }

    @Test func absoluteSymlinkToAnExistingHostDirectoryIsReadInsideTheRoot() throws {
        try storeImage("tmp", [[RawTar.Member("escape", .symlink, link: "/tmp"), RawTar.Member("escape/boxstack-evil", content: "x")]])
        try expectRefused("tmp", naming: "escape/boxstack-evil")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/boxstack-evil"))
    }

    @Test func symlinkChainAcrossLayers() throws {
        try storeImage(
            "chain",
            [
                [RawTar.Member("b", .symlink, link: outside), RawTar.Member("a", .symlink, link: "b")],
                [RawTar.Member("a/victim", content: "overwritten")],
            ])
        try unpackContained("chain")
    }

    @Test func directoryReplacedBySymlinkInTheSameLayer() throws {
        try storeImage(
            "swap",
            [[RawTar.Member("d", .directory), RawTar.Member("d", .symlink, link: outside), RawTar.Member("d/victim", content: "overwritten")]])
        try unpackContained("swap")
    }

    @Test func fileOverAnExistingSymlinkReplacesTheSymlink() throws {
        try storeImage(
            "replace",
            [[RawTar.Member("f", .symlink, link: outside + "/victim")], [RawTar.Member("f", content: "mine")]])
        #expect(try unpackContained("replace") == nil)
        #expect(file("f") == "mine")
        var info = stat()
        #expect(lstat(root + "/f", &info) == 0 && info.st_mode & S_IFMT == S_IFREG)
    }

    @Test func directoryOverAnExistingSymlinkReplacesTheSymlink() throws {
        try storeImage(
            "dirswap",
            [[RawTar.Member("d", .symlink, link: outside)], [RawTar.Member("d", .directory, mode: 0o700), RawTar.Member("d/own", content: "in")]])
        #expect(try unpackContained("dirswap") == nil)
        #expect(file("d/own") == "in")
    }

    @Test func symlinksInsideTheTreeAreFollowed() throws {
        try storeImage(
            "inside",
            [[RawTar.Member("usr/lib", .directory), RawTar.Member("lib", .symlink, link: "usr/lib"), RawTar.Member("lib/file", content: "in")]])
        #expect(try unpackContained("inside") == nil)
        #expect(file("usr/lib/file") == "in")
    }

    @Test func absoluteSymlinksResolveAgainstTheRoot() throws {
        try storeImage(
            "absolute",
            [[RawTar.Member("usr/lib", .directory), RawTar.Member("lib", .symlink, link: "/usr/lib"), RawTar.Member("lib/file", content: "in")]])
        #expect(try unpackContained("absolute") == nil)
        #expect(file("usr/lib/file") == "in")
    }

    // MARK: Long paths

    @Test func symlinkBelowAPathLongerThanPathMax() throws {
        let deep = Array(repeating: "d", count: 2200).joined(separator: "/")
        try storeImage(
            "deep",
            [
                [
                    RawTar.Member(deep + "/x", .symlink, link: String(repeating: "../", count: 3000)),
                    RawTar.Member(deep + "/x/escaped", content: "x"),
                    RawTar.Member(deep + "/y", .symlink, link: outside),
                    RawTar.Member(deep + "/y/victim", content: "overwritten"),
                ]
            ])
        try unpackContained("deep")
        #expect(!FileManager.default.fileExists(atPath: directory.file("escaped")))
    }

    @Test func whiteoutOfALongPathRemovesOnlyInside() throws {
        let deep = Array(repeating: "d", count: 2200).joined(separator: "/")
        try storeImage("deepwhiteout", [[RawTar.Member(deep + "/file", content: "x")], [RawTar.Member(".wh.d")]])
        let failure = try unpackContained("deepwhiteout")
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(!FileManager.default.fileExists(atPath: root + "/d"))
    }

    // MARK: Whiteouts and opaque markers

    @Test func whiteoutThroughASymlinkDeletesNothingOutside() throws {
        try storeImage(
            "whiteout",
            [
                [RawTar.Member("a", .symlink, link: outside), RawTar.Member("b", .symlink, link: "../outside")],
                [RawTar.Member("a/.wh.victim"), RawTar.Member("b/.wh.victim"), RawTar.Member("a/.wh.sub"), RawTar.Member("b/sub/.wh.other")],
            ])
        try unpackContained("whiteout")
        #expect(FileManager.default.fileExists(atPath: outside + "/sub/other"))
    }

    @Test func opaqueMarkerThroughASymlinkClearsNothingOutside() throws {
        try storeImage(
            "opaque",
            [
                [RawTar.Member("a", .symlink, link: outside), RawTar.Member("c", .symlink, link: "../../..")],
                [RawTar.Member("a/.wh..wh..opq"), RawTar.Member("c/.wh..wh..opq")],
            ])
        try unpackContained("opaque")
    }

    @Test(arguments: [".wh.", ".wh..", ".wh...", "dir/.wh..", "dir/.wh.", "dir/.wh..."])
    func whiteoutsThatNameNothingAreRefused(name: String) throws {
        try storeImage(
            "names-\(name.count)",
            [[RawTar.Member("dir", .directory), RawTar.Member("dir/keep", content: "k"), RawTar.Member("top", content: "t")], [RawTar.Member(name)]])
        // The top layer is read first, so the refusal comes before anything is written.
        try expectRefused("names-\(name.count)", naming: name)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).isEmpty)
    }

    @Test func aufsBookkeepingIsIgnored() throws {
        try storeImage("aufs", [[RawTar.Member("keep", content: "k")], [RawTar.Member(".wh..wh.plnk", .directory), RawTar.Member(".wh..wh.aufs")]])
        #expect(try unpackContained("aufs") == nil)
        #expect(file("keep") == "k")
        #expect(!FileManager.default.fileExists(atPath: root + "/.wh..wh.plnk"))
    }

    // MARK: Hard links

    @Test func hardLinkThroughASymlinkOutsideIsRefused() throws {
        try storeImage("hardlink", [[RawTar.Member("escape", .symlink, link: outside), RawTar.Member("link", .hardlink, link: "escape/victim")]])
        try expectRefused("hardlink", naming: "link")
    }

    @Test func hardLinkWithAnAbsoluteTargetStaysInside() throws {
        try storeImage("hardabsolute", [[RawTar.Member("link", .hardlink, link: outside + "/victim")]])
        try expectRefused("hardabsolute", naming: "link")
    }

    @Test func hardLinkClimbingIsRefused() throws {
        try storeImage("hardclimb", [[RawTar.Member("link", .hardlink, link: "../../outside/victim")]])
        try expectRefused("hardclimb", naming: "link")
    }

    @Test func hardLinkOverTheTargetsOwnNameIsHarmless() throws {
        try storeImage("selflink", [[RawTar.Member("f", content: "same"), RawTar.Member("f", .hardlink, link: "f")]])
        #expect(try unpackContained("selflink") == nil)
        #expect(file("f") == "same")
    }

    // MARK: Names

    @Test func leadingSlashesAndDotsAreRelativeToTheRoot() throws {
        try storeImage(
            "names",
            [
                [
                    RawTar.Member("/", .directory, mode: 0o755), RawTar.Member("./etc/", .directory),
                    RawTar.Member("/etc/hostname", content: "box"), RawTar.Member("./usr//bin/./tool", content: "t"),
                    RawTar.Member("/tmp-boxstack-absolute-evil", content: "inside"),
                ]
            ])
        #expect(try unpackContained("names") == nil)
        #expect(file("etc/hostname") == "box")
        #expect(file("usr/bin/tool") == "t")
        #expect(file("tmp-boxstack-absolute-evil") == "inside")
        #expect(!FileManager.default.fileExists(atPath: "/tmp-boxstack-absolute-evil"))
    }

    @Test(arguments: ["../../outside/evil", "a/../../evil", "..", "a/.."])
    func namesWithDotDotAreRefused(name: String) throws {
        try storeImage("dotdot", [[RawTar.Member(name, content: "x")]])
        try expectRefused("dotdot", naming: name)
    }

    @Test func controlCharactersInNamesAreEscapedInErrors() throws {
        let name = "evil\u{1B}]0;owned\u{07}/../../x"
        try storeImage("escape", [[RawTar.Member(name, content: "x")]])
        let error = try #require(try unpackContained("escape"))
        #expect(!error.message.contains("\u{1B}"))
        #expect(error.message.contains("\\u{1b}"))
    }

    @Test func theRootEntryCannotBeAFile() throws {
        try storeImage("rootfile", [[RawTar.Member(".", .file, content: "x")]])
        try expectRefused("rootfile", naming: ".")
    }

    // MARK: Damaged and changed blobs

    @Test func aBlobChangedInTheStoreIsRefusedBeforeAnythingIsWritten() throws {
        try storeImage("changed", [[RawTar.Member("file", content: "good")]])
        let layout = try OCILayout(opening: store.layoutPath(name: "changed"))
        let manifest = try #require(try layout.manifest(tag: "latest")?.manifest)
        let blob = layout.blobPath(manifest.layers[0].digest)
        chmod(blob, 0o644)
        try Data(RawTar([RawTar.Member("file", content: "evil")]).bytes).write(to: URL(fileURLWithPath: blob))
        let error = try #require(try unpackContained("changed"))
        #expect(error.code == .checksumMismatch)
        #expect(error.message.contains(manifest.layers[0].digest.description))
        #expect(file("file") == nil)
    }

    @Test func aDiffIDThatDoesNotMatchIsRefused() throws {
        try storeImage("diffid", [[RawTar.Member("file", content: "good")]], gzip: true)
        let layout = try OCILayout(opening: store.layoutPath(name: "diffid"))
        let (descriptor, manifest) = try #require(try layout.manifest(tag: "latest"))
        var config = try layout.readJSON(ImageConfig.self, manifest.config.digest)
        config.rootfs.diffIDs = [ContentDigest.of(Data("something else".utf8))]
        let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
        let lying = try layout.writeBlob(
            OCIJSON.encode(Manifest(config: configBlob, layers: manifest.layers)), mediaType: descriptor.mediaType)
        try layout.setTag("latest", to: lying)
        let error = try #require(try unpackContained("diffid"))
        #expect(error.code == .checksumMismatch)
        #expect(error.message.contains("diffID"))
    }

    @Test func aTruncatedLayerIsAnError() throws {
        try storeImage("short", [[RawTar.Member("big", content: "only this", declaredSize: 1 << 20)]])
        let error = try #require(try unpackContained("short"))
        #expect(error.message.contains("short"))
    }

    @Test func gzipLayersUnpackWithTheirDigestsChecked() throws {
        try storeImage("gzip", [[RawTar.Member("etc", .directory), RawTar.Member("etc/file", content: "zipped")]], gzip: true)
        #expect(try unpackContained("gzip") == nil)
        #expect(file("etc/file") == "zipped")
    }
}
