/// One option of a KIWI command, as its docopt usage declares it.
public struct KiwiOption: Sendable, Hashable {
    public let name: String
    public let takesValue: Bool
    public let repeatable: Bool

    init(_ name: String, value: Bool = true, repeatable: Bool = false) {
        self.name = name
        takesValue = value
        self.repeatable = repeatable
    }
}

/// The options of the KIWI commands boxstack relays, taken from KIWI 9.24's docopt usage texts.
///
/// `KiwiOptionsTests` compares these tables with the usage text of the KIWI that is installed,
/// so a drift shows up as a failing test rather than as a build rejected inside the box.
public enum KiwiOptions {
    /// `kiwi-ng system build`.
    public static let systemBuild: [KiwiOption] = [
        KiwiOption("--description"),
        KiwiOption("--target-dir"),
        KiwiOption("--allow-existing-root", value: false),
        KiwiOption("--clear-cache", value: false),
        KiwiOption("--ignore-repos", value: false),
        KiwiOption("--ignore-repos-used-for-build", value: false),
        KiwiOption("--set-repo"),
        KiwiOption("--set-repo-credentials"),
        KiwiOption("--add-repo", repeatable: true),
        KiwiOption("--add-repo-credentials", repeatable: true),
        KiwiOption("--add-package", repeatable: true),
        KiwiOption("--add-bootstrap-package", repeatable: true),
        KiwiOption("--delete-package", repeatable: true),
        KiwiOption("--set-container-derived-from"),
        KiwiOption("--set-container-tag"),
        KiwiOption("--add-container-label", repeatable: true),
        KiwiOption("--signing-key", repeatable: true),
    ]

    /// `kiwi-ng system create`.
    public static let systemCreate: [KiwiOption] = [
        KiwiOption("--root"),
        KiwiOption("--target-dir"),
        KiwiOption("--signing-key", repeatable: true),
    ]

    /// boxstack's own stackbuild options, given after `--` like KIWI's stackbuild plugin.
    public static let stackbuild: [KiwiOption] = [
        KiwiOption("--stash", repeatable: true),
        KiwiOption("--from-registry"),
    ]
}
