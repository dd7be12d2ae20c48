import ArgumentParser
import Boxed
import BoxstackCore
import Foundation
import Kiwi
import OCI
import Stash

/// `boxstack stash …`: stash a root tree or list the stashes (the default subcommand), and the other
/// stash verbs.
struct StashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stash",
        abstract: "Keep a root tree as an OCI image (each stash of a name adds a layer), list, push, pull and unpack stashes.",
        discussion: """
            The store is $BOXSTACK_STASH_DIR, else $XDG_DATA_HOME/boxstack/stashes: one OCI image layout per \
            stash name, so 'skopeo inspect oci:STORE/NAME:TAG' and 'umoci unpack --image STORE/NAME:TAG' read it.
            """,
        subcommands: [StashTree.self, StashRemove.self, StashPush.self, StashPull.self, StashUnpack.self],
        defaultSubcommand: StashTree.self)
}

/// `boxstack stash --root DIR …` and `boxstack stash --list`: the default stash verb.
struct StashTree: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree",
        abstract: "Stash a root tree as NAME:TAG ('boxstack stash --root DIR'), or list the stashes ('boxstack stash --list').",
        discussion: """
            The first stash of a name writes one layer with the whole tree; each later one adds a layer with \
            only the changes since the current top of that name, deletions as whiteouts.
            """)

    @Option(help: ArgumentHelp("The root tree to stash.", valueName: "dir"))
    var root: String?

    @Option(
        name: .customLong("container-name"),
        help: ArgumentHelp(
            "The stash name (default: the image name in ROOT/image/config.xml).", valueName: "name"))
    var containerName: String?

    @Option(help: ArgumentHelp("The tag.", valueName: "tag"))
    var tag: String = "latest"

    @Option(
        help: ArgumentHelp(
            "Layer compression: gzip (what every OCI tool reads, on all cores with libdeflate) or zstd (faster; needs umoci 0.4.8+, Docker 23+).",
            valueName: "gzip|zstd"))
    var compression: StashCompression = .gzip

    @Flag(help: "List the stashes: name, tags, layers and creation time of the newest tag, and the size on disk.")
    var list = false

    @Flag(help: "With --list: print JSON with the same fields.")
    var json = false

    func validate() throws {
        if list == (root != nil) { throw ValidationError("give either --root DIR or --list.") }
        if json, !list { throw ValidationError("--json only goes with --list.") }
    }

    func run() async throws {
        try await reportingErrors {
            let store = StashStore()
            if list {
                try StashListing(store: store).print(json: json)
                return
            }
            guard let root else { return }
            let description = try KiwiDescription.stored(inRoot: root)
            guard let name = containerName ?? description?.name else {
                throw BoxstackError(
                    .invalidArgument, "\(root) has no image/config.xml to take the stash name from; pass --container-name NAME.")
            }
            let result = try store.stash(
                root: root, name: name, tag: tag, compression: compression.layerCompression, labels: description.map(StashLabels.init))
            print(result.summary)
        }
    }
}

/// The `--compression` values a user may choose.
enum StashCompression: String, ExpressibleByArgument, CaseIterable {
    case zstd, gzip

    var layerCompression: LayerCompression { self == .zstd ? .zstd : .gzip }
}

/// `stash --list`: one row per stash name.
struct StashListing {
    let store: StashStore

    /// One listed stash; the table and the JSON have the same fields.
    struct Row: Encodable {
        var name: String
        var tags: [String]
        /// Layers of the newest tag.
        var layers: Int
        /// Bytes of all blobs of the name.
        var size: Int64
        /// Creation time of the newest tag (RFC 3339).
        var created: String?
    }

    func rows() throws -> [Row] {
        try store.list().map { summary in
            let newest = summary.tags.max { ($0.created ?? "") < ($1.created ?? "") }
            return Row(
                name: summary.name, tags: summary.tags.map(\.tag), layers: newest?.layerCount ?? 0, size: summary.totalSize,
                created: newest?.created)
        }
    }

    func print(json: Bool) throws {
        let rows = try rows()
        if json, rows.isEmpty {
            Swift.print("[]")
            return
        }
        if json {
            try printJSON(rows)
            return
        }
        guard !rows.isEmpty else {
            Swift.print("no stashes in \(store.directory)")
            return
        }
        let table =
            [["NAME", "TAGS", "LAYERS", "SIZE", "CREATED"]]
            + rows.map { [$0.name, $0.tags.joined(separator: ","), "\($0.layers)", ByteCount.format($0.size), $0.created ?? "-"] }
        let widths = (0..<5).map { column in table.map { $0[column].count }.max() ?? 0 }
        for line in table {
            let cells = line.enumerated().map { column, cell in
                column == 4 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            Swift.print(cells.joined(separator: "  "))
        }
    }
}
