import BoxstackCore
import Foundation
import OCI
import Stash
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A store and a scratch area in one temporary directory.
private struct Scratch {
    let directory: TemporaryDirectory
    let store: StashStore
    init() throws {
        directory = try TemporaryDirectory("stash-test")
        store = StashStore(directory: directory.file("store"))
    }
    func path(_ relative: String) -> String { directory.file(relative) }
}

/// The labels of the sample tree's description (Tests/TestSupport/TreeFixtures.swift), as the CLI reads them.
private let sampleLabels = StashLabels(descriptionName: "sample-image", descriptionVersion: "1.2.3", author: "Test Author")

/// Puts an image made of uncompressed `layers` (tar files) into the store as `name:latest`.
private func storeImage(_ store: StashStore, name: String, layers: [String]) throws {
    let layout = try OCILayout.create(at: store.layoutPath(name: name))
    var config = ImageConfig(architecture: "amd64")
    var descriptors: [Descriptor] = []
    for tar in layers {
        let (digest, size) = try layout.importBlob(fromFile: tar)
        descriptors.append(Descriptor(mediaType: MediaType.layerTar, digest: digest, size: size))
        config.rootfs.diffIDs.append(digest)
    }
    let configBlob = try layout.writeBlob(OCIJSON.encode(config), mediaType: MediaType.imageConfig)
    let manifest = try layout.writeBlob(OCIJSON.encode(Manifest(config: configBlob, layers: descriptors)), mediaType: MediaType.imageManifest)
    try layout.setTag("latest", to: manifest)
}

@Suite struct StashRoundTripTests {
    @Test func unpackedStashEqualsTheTreeEntryByEntry() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.makeSampleTree(at: tree)
        let result = try scratch.store.stash(root: tree, name: "sample-image", labels: sampleLabels)
        #expect(result.reference.description == "sample-image:latest")
        #expect(result.layerCount == 1)

        let unpacked = scratch.path("unpacked")
        let report = try scratch.store.unpack([result.reference], into: unpacked)
        #expect(report.summary.isEmpty, "\(report.summary)")
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(unpacked))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        // The excluded directories are kept, empty.
        #expect(FileManager.default.fileExists(atPath: unpacked + "/proc"))
        #expect(!FileManager.default.fileExists(atPath: unpacked + "/proc/ignored"))
        #expect(!FileManager.default.fileExists(atPath: unpacked + "/dev/console-file"))
    }

    @Test func secondStashAddsOneLayerWithOnlyTheChanges() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.makeSampleTree(at: tree)
        try scratch.store.stash(root: tree, name: "incremental", labels: sampleLabels)
        try TreeFixture.shell(
            """
            printf 'changed\\n' > etc/hostname
            printf 'new' > usr/lib/new-file
            rm usr/bin/dangling
            rm -r usr/lib/deep
            chmod 0700 var/empty
            """, in: tree)
        let second = try scratch.store.stash(root: tree, name: "incremental")
        #expect(second.layerCount == 2)

        let layout = try OCILayout(opening: scratch.store.layoutPath(name: "incremental"))
        let manifest = try #require(try layout.manifest(tag: "latest")).manifest
        #expect(manifest.layers.count == 2)
        let entries = try TreeFixture.tarEntries(layout.blobPath(manifest.layers[1].digest))
        #expect(
            entries == [
                "etc/hostname", "usr/bin/", "usr/bin/.wh.dangling", "usr/lib/", "usr/lib/.wh.deep", "usr/lib/new-file",
                "var/empty/",
            ])
        let config = try layout.readJSON(ImageConfig.self, manifest.config.digest)
        #expect(config.rootfs.diffIDs.count == 2)
        #expect(config.history?.count == 2)
        #expect(config.labels[StashStore.Label.descriptionName] == "sample-image")
        #expect(config.labels[StashStore.Label.descriptionVersion] == "1.2.3")
        #expect(config.labels[StashStore.Label.author] == "Test Author")

        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([try StashReference(parsing: "incremental")], into: unpacked)
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(unpacked))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
    }

    @Test func directoryReplacedByFileAndFileByDirectory() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p a/sub b && echo 1 > a/sub/x && echo 2 > a/y && echo 3 > b/file && echo 4 > c", in: tree)
        try scratch.store.stash(root: tree, name: "swap")
        try TreeFixture.shell("rm -r a && echo now-a-file > a && rm c && mkdir c && echo inside > c/z", in: tree)
        let result = try scratch.store.stash(root: tree, name: "swap")
        let layout = try OCILayout(opening: scratch.store.layoutPath(name: "swap"))
        let layer = try #require(result.layer)
        let entries = try TreeFixture.tarEntries(layout.blobPath(layer.digest))
        #expect(entries == [".wh.a", ".wh.c", "a", "c/", "c/z"])

        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([try StashReference(name: "swap")], into: unpacked)
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(unpacked))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
    }

    @Test func anUnchangedTreeAddsNoLayerAndANewTagSharesTheImage() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p etc && echo hi > etc/file", in: tree)
        let first = try scratch.store.stash(root: tree, name: "same")
        let again = try scratch.store.stash(root: tree, name: "same")
        #expect(again.layer == nil)
        #expect(again.layerCount == 1)
        #expect(again.manifest.digest == first.manifest.digest)
        #expect(again.summary == "same:latest is unchanged: 1 layer, no new layer")

        let tagged = try scratch.store.stash(root: tree, name: "same", tag: "v2")
        #expect(tagged.layer == nil)
        let layout = try OCILayout(opening: scratch.store.layoutPath(name: "same"))
        #expect(try layout.manifest(tag: "v2")?.descriptor.digest == first.manifest.digest)
        #expect(try layout.manifest(tag: "latest")?.descriptor.digest == first.manifest.digest)

        // Touching a file's time is a change: the next stash adds a layer again.
        try TreeFixture.shell("touch -d 2001-01-01 etc/file", in: tree)
        let changed = try scratch.store.stash(root: tree, name: "same")
        #expect(changed.layerCount == 2)
        #expect(changed.layer != nil)
    }

    @Test func laterImagesOverwriteEarlierOnesAndApplyTheirWhiteouts() throws {
        let scratch = try Scratch()
        let base = scratch.path("base")
        try TreeFixture.shell("mkdir -p etc data && echo base > etc/motd && echo keep > etc/keep && echo d > data/file", in: base)
        try scratch.store.stash(root: base, name: "base")
        let top = scratch.path("top")
        try TreeFixture.shell("mkdir -p etc data && echo top > etc/motd && echo d > data/file", in: top)
        try scratch.store.stash(root: top, name: "top")
        try TreeFixture.shell("rm -r data && echo extra > etc/extra", in: top)
        try scratch.store.stash(root: top, name: "top")

        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([try StashReference(name: "base"), try StashReference(name: "top")], into: unpacked)
        #expect(try String(contentsOfFile: unpacked + "/etc/motd", encoding: .utf8) == "top\n")
        #expect(FileManager.default.fileExists(atPath: unpacked + "/etc/keep"))
        #expect(FileManager.default.fileExists(atPath: unpacked + "/etc/extra"))
        // top's whiteout of data/ also removes base's data/.
        #expect(!FileManager.default.fileExists(atPath: unpacked + "/data"))
    }

    @Test func unpackRefusesADirectoryThatIsNotEmptyAndLeavesItAlone() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.makeSampleTree(at: tree)
        let result = try scratch.store.stash(root: tree, name: "sample-image", labels: sampleLabels)
        let target = scratch.path("occupied")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try "mine".write(toFile: target + "/etc", atomically: false, encoding: .utf8)
        let error = try #require(throws: BoxstackError.self) { try scratch.store.unpack([result.reference], into: target) }
        #expect(error.message.contains("\(target) is not empty"), "\(error.message)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: target) == ["etc"])
        #expect(try String(contentsOfFile: target + "/etc", encoding: .utf8) == "mine")
    }

    @Test func gzipCompressionOnRequest() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p etc && echo hi > etc/file", in: tree)
        let result = try scratch.store.stash(root: tree, name: "gz", compression: .gzip)
        #expect(result.layer?.mediaType == MediaType.layerGzip)
        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([result.reference], into: unpacked)
        #expect(try String(contentsOfFile: unpacked + "/etc/file", encoding: .utf8) == "hi\n")
    }

    @Test func listShowsTagsLayersAndSizesAndRemoveCollectsBlobs() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p etc && echo hi > etc/file", in: tree)
        try scratch.store.stash(root: tree, name: "team/base", tag: "v1")
        try TreeFixture.shell("echo more > etc/more", in: tree)
        try scratch.store.stash(root: tree, name: "team/base", tag: "v2")
        let list = try scratch.store.list()
        #expect(list.map(\.name) == ["team/base"])
        #expect(list[0].tags.map(\.tag) == ["v1", "v2"])
        #expect(list[0].tags.map(\.layerCount) == [1, 2])
        #expect(list[0].tags.allSatisfy { $0.created != nil && $0.size > 0 })

        let layout = try OCILayout(opening: scratch.store.layoutPath(name: "team/base"))
        let blobsBefore = try FileManager.default.contentsOfDirectory(atPath: layout.path + "/blobs/sha256").count
        try scratch.store.remove(name: "team/base", tag: "v2")
        let blobsAfter = try FileManager.default.contentsOfDirectory(atPath: layout.path + "/blobs/sha256").count
        #expect(blobsAfter < blobsBefore)
        #expect(try scratch.store.list()[0].tags.map(\.tag) == ["v1"])
        try scratch.store.remove(name: "team/base")
        #expect(try scratch.store.list().isEmpty)
    }
}

@Suite struct StashNameTests {
    @Test(arguments: ["Bad_Name", "UPPER", "-leading", "trailing-", "has space", "a//b"])
    func invalidNamesGetAHelpfulMessage(name: String) throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p etc", in: tree)
        let error = try #require(throws: BoxstackError.self) { try scratch.store.stash(root: tree, name: name) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("--container-name"))
        #expect(error.message.contains("not a valid container name"))
    }

    @Test func parsesNameAndTag() throws {
        let reference = try StashReference(parsing: "team/base:2021-10-08")
        #expect(reference.name == "team/base")
        #expect(reference.tag == "2021-10-08")
        #expect(try StashReference(parsing: "plain").tag == "latest")
    }

    @Test func unreadablePathIsNamedAndNothingIsStored() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p etc secret && echo s > secret/key && echo hi > etc/file", in: tree)
        if TreeFixture.isRoot {
            // Root reads everything, so check the other half of the promise: the same tree stashes fine.
            #expect(throws: Never.self) { try scratch.store.stash(root: tree, name: "readable") }
            return
        }
        chmod(tree + "/secret", 0)
        let error = try #require(throws: BoxstackError.self) { try scratch.store.stash(root: tree, name: "unreadable") }
        chmod(tree + "/secret", 0o755)
        #expect(error.message.contains(tree + "/secret"))
        #expect(error.message.contains("root"))
        #expect(try scratch.store.list().isEmpty)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: scratch.store.directory)) ?? []
        #expect(leftovers.filter { $0 != ".locks" }.isEmpty)
    }
}

/// Interoperability with skopeo and umoci; these suites need both installed.
@Suite(.enabled(if: Subprocess.which("skopeo") != nil && Subprocess.which("umoci") != nil))
struct StashInteropTests {
    @Test func skopeoInspectsAndUmociUnpacksOurStash() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.makeSampleTree(at: tree)
        // Default options: Debian's umoci 0.4.7 reads gzip layers only (zstd needs umoci 0.5); skopeo reads both.
        try scratch.store.stash(root: tree, name: "interop", tag: "v1", labels: sampleLabels)
        try TreeFixture.shell("echo changed > etc/hostname && rm usr/bin/dangling", in: tree)
        try scratch.store.stash(root: tree, name: "interop", tag: "v1")
        try scratch.store.stash(root: tree, name: "interop", tag: "zstd", compression: .zstd)
        let zstd = try Subprocess.run(["skopeo", "inspect", "oci:" + scratch.store.layoutPath(name: "interop") + ":zstd"]).check()
        #expect(zstd.output.contains("\"Layers\""))

        let image = scratch.store.layoutPath(name: "interop") + ":v1"
        let inspect = try Subprocess.run(["skopeo", "inspect", "oci:" + image]).check()
        let json = try #require(try JSONSerialization.jsonObject(with: inspect.standardOutput) as? [String: Any])
        #expect((json["Layers"] as? [String])?.count == 2)
        let raw = try Subprocess.run(["skopeo", "inspect", "--raw", "oci:" + image]).check()
        let manifest = try #require(try JSONSerialization.jsonObject(with: raw.standardOutput) as? [String: Any])
        let layerTypes = (manifest["layers"] as? [[String: Any]])?.compactMap { $0["mediaType"] as? String }
        #expect(layerTypes == ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+gzip"])
        #expect((json["Labels"] as? [String: String])?[StashStore.Label.descriptionName] == "sample-image")

        let bundle = scratch.path("bundle")
        var arguments = ["umoci", "unpack", "--image", image, bundle]
        if !TreeFixture.isRoot { arguments.insert("--rootless", at: 2) }
        try Subprocess.run(arguments).check()
        // umoci does not restore symlink times.
        let expected = try TreeFixture.snapshot(tree, symlinkTimes: false)
        let actual = try TreeFixture.snapshot(bundle + "/rootfs", symlinkTimes: false)
        let differences = TreeFixture.differences(expected, actual)
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
    }

    /// A layer of more than one 4 MiB block is a series of gzip members, made on several threads: gzip,
    /// umoci and skopeo read it as one stream, its diffID is the sha256 of what gzip inflates, and a
    /// second stash of the same tree writes the same bytes.
    @Test func aLayerOfManyGzipMembersIsOneStreamForGzipUmociAndSkopeo() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        // About 12 MiB that compress, but not to nothing: three members or four.
        try TreeFixture.shell(
            "mkdir -p data && seq 1 1600000 > data/numbers && head -c 1000000 /dev/urandom > data/noise", in: tree)
        let first = try scratch.store.stash(root: tree, name: "members", tag: "one")
        let layer = try #require(first.layer)
        let layout = try OCILayout(opening: scratch.store.layoutPath(name: "members"))
        let blob = layout.blobPath(layer.digest)

        let members = try Subprocess.run([
            "python3", "-c",
            """
            import sys, zlib
            data, count = open(sys.argv[1], 'rb').read(), 0
            while data:
                inflater = zlib.decompressobj(31)
                inflater.decompress(data)
                data, count = inflater.unused_data, count + 1
            print(count)
            """,
            blob,
        ]).check().output
        #expect((Int(members.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 3, "\(members)")
        let inflated = try Subprocess.run(["sh", "-c", "gzip -dc \"$1\" | sha256sum", "sh", blob]).check().output
        let config = try #require(try layout.manifest(tag: "one")).manifest.config
        let configText = try String(contentsOfFile: layout.blobPath(config.digest), encoding: .utf8)
        #expect(configText.contains("sha256:" + String(inflated.prefix(64))))

        let second = try scratch.store.stash(root: tree, name: "again", tag: "one")
        #expect(second.layer?.digest == layer.digest)

        let inspect = try Subprocess.run(["skopeo", "inspect", "oci:" + scratch.store.layoutPath(name: "members") + ":one"]).check()
        #expect(inspect.output.contains(layer.digest.description))
        let bundle = scratch.path("bundle")
        var arguments = ["umoci", "unpack", "--image", scratch.store.layoutPath(name: "members") + ":one", bundle]
        if !TreeFixture.isRoot { arguments.insert("--rootless", at: 2) }
        try Subprocess.run(arguments).check()
        let original = try Subprocess.run(["sha256sum", tree + "/data/numbers", tree + "/data/noise"]).check().output
        let unpacked = try Subprocess.run(["sha256sum", bundle + "/rootfs/data/numbers", bundle + "/rootfs/data/noise"]).check().output
        #expect(original.split(separator: "\n").map { $0.prefix(64) } == unpacked.split(separator: "\n").map { $0.prefix(64) })
    }

    /// `umoci insert ROOT /` writes the root itself as `/` and every name with a leading `/`: a
    /// container made that way unpacks (its names are relative to the root, as runtimes read them).
    @Test func aContainerInsertedAtTheRootByUmociUnpacks() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.shell("mkdir -p etc usr/bin && echo debian > etc/hostname && ln -s ../etc/hostname usr/bin/name", in: tree)
        let layout = scratch.store.layoutPath(name: "inserted")
        try Subprocess.run(["umoci", "init", "--layout", layout]).check()
        try Subprocess.run(["umoci", "new", "--image", layout + ":latest"]).check()
        var insert = ["umoci", "insert", "--image", layout + ":latest", tree, "/"]
        if !TreeFixture.isRoot { insert.insert("--rootless", at: 2) }
        try Subprocess.run(insert).check()
        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([try StashReference(name: "inserted")], into: unpacked)
        #expect(try String(contentsOfFile: unpacked + "/etc/hostname", encoding: .utf8) == "debian\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: unpacked + "/usr/bin/name") == "../etc/hostname")
    }

    @Test func imageMadeByUmociWithWhiteoutsUnpacksCorrectly() throws {
        let scratch = try Scratch()
        let layout = scratch.store.layoutPath(name: "from-umoci")
        let bundle = scratch.path("bundle")
        try TreeFixture.makeUmociImageWithWhiteouts(layout: layout, bundle: bundle)

        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([try StashReference(name: "from-umoci")], into: unpacked)
        // umoci rounds times to whole seconds in its layers; compare everything else.
        let expected = try TreeFixture.snapshot(bundle + "/rootfs", times: false)
        let actual = try TreeFixture.snapshot(unpacked, times: false)
        let differences = TreeFixture.differences(expected, actual)
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        #expect(!FileManager.default.fileExists(atPath: unpacked + "/gone"))
    }
}

@Suite struct GuestExportTests {
    /// The agent's `tree-manifest` and `tree-export` commands, run here on the host with the same tools.
    private func agentManifest(_ root: String) throws -> Data {
        try Subprocess.run([
            "find", root, "(", "-path", root + "/dev/*", "-o", "-path", root + "/proc/*", "-o", "-path", root + "/sys/*",
            "-o", "-path", root + "/run/*", ")", "-prune", "-o", "-printf", "%y\\t%m\\t%U\\t%G\\t%s\\t%T@\\t%P\\0%l\\0",
        ]).check().standardOutput
    }

    private func agentExport(_ root: String, paths: [String], to tar: String, scratch: Scratch) throws {
        let list = scratch.path("list")
        try Data(paths.map { $0 + "\0" }.joined().utf8).write(to: URL(fileURLWithPath: list))
        try Subprocess.run([
            // GNU tar's --null and --no-recursion are positional: they must come before -T.
            "tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--no-recursion", "--null",
            "-cf", tar, "-T", list,
        ]).check()
    }

    @Test func stashFromAgentOutputEqualsTheTree() throws {
        let scratch = try Scratch()
        let tree = scratch.path("tree")
        try TreeFixture.makeSampleTree(at: tree)
        let first = try TreeManifest(agentOutput: agentManifest(tree))
        let (all, none) = TreeManifest.changes(from: try scratch.store.previousTreeManifest(name: "guest"), to: first)
        #expect(none.isEmpty)
        try agentExport(tree, paths: all, to: scratch.path("full.tar"), scratch: scratch)
        try scratch.store.appendLayer(
            name: "guest", fromTar: scratch.path("full.tar"), deleted: none, manifest: first, labels: sampleLabels)

        try TreeFixture.shell("echo changed > etc/hostname && rm -r usr/lib/deep && rm usr/bin/dangling && echo n > new", in: tree)
        let second = try TreeManifest(agentOutput: agentManifest(tree))
        let previous = try #require(try scratch.store.previousTreeManifest(name: "guest"))
        let (changed, deleted) = TreeManifest.changes(from: previous, to: second)
        // Rewriting a file leaves its directory's mtime alone; deleting and creating entries does not.
        #expect(Set(changed) == Set(["etc/hostname", "usr/bin", "usr/lib", "new"]))
        #expect(deleted == ["usr/bin/dangling", "usr/lib/deep"])
        try agentExport(tree, paths: changed, to: scratch.path("changes.tar"), scratch: scratch)
        let result = try scratch.store.appendLayer(
            name: "guest", fromTar: scratch.path("changes.tar"), deleted: deleted, manifest: second)
        #expect(result.layerCount == 2)

        let layout = try OCILayout(opening: scratch.store.layoutPath(name: "guest"))
        let config = try layout.readJSON(ImageConfig.self, try #require(try layout.manifest(tag: "latest")).manifest.config.digest)
        #expect(config.labels[StashStore.Label.descriptionName] == "sample-image")

        let unpacked = scratch.path("unpacked")
        try scratch.store.unpack([result.reference], into: unpacked)
        let differences = TreeFixture.differences(try TreeFixture.snapshot(tree), try TreeFixture.snapshot(unpacked))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
    }

    @Test func layerOrderPutsParentsFirstAndWhiteoutsBeforeSiblings() {
        let paths = ["b", "a/x", "a", "a-c", "a/.wh.y", ".wh.c", "a/b/c"]
        #expect(paths.sorted(by: TreeManifest.precedes) == [".wh.c", "a", "a/.wh.y", "a/b/c", "a/x", "a-c", "b"])
        #expect(!TreeManifest.precedes("a", "a"))
    }

    @Test func parsesAgentRecords() throws {
        let output = Data("d\t755\t0\t0\t4096\t1700000000.5000000000\t\0\0l\t777\t0\t0\t7\t1700000001.1234567890\tbin\0usr/bin\0".utf8)
        let manifest = try TreeManifest(agentOutput: output)
        #expect(manifest.entries.count == 1)
        #expect(manifest.entries[0].path == "bin")
        #expect(manifest.entries[0].linkTarget == "usr/bin")
        #expect(manifest.entries[0].mtimeNanoseconds == 1_700_000_001_123_456_789)
        #expect(try TreeManifest(serialized: manifest.serialized()) == manifest)
    }
}
