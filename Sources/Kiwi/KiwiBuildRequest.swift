import BoxstackCore
import Foundation

/// The KIWI arguments given after `--`, checked against KIWI's own options before any VM starts.
///
/// Three shapes are accepted:
/// - a build: `--description DIR --target-dir DIR [system build options]`;
/// - a stackbuild: `--stash NAME[:TAG]... [--from-registry URI] --target-dir DIR [--description DIR]
///   [options]`. Without `--description` it rebuilds with `system create` from the stash's own
///   description, so only `system create`'s options are allowed; with one it runs `system build
///   --allow-existing-root` on top of the stacked tree;
/// - a derived build: `--description DIR [--from-registry URI] --target-dir DIR [options]` where DIR
///   holds a derived description (`DerivedDescription`). Its base stash is the one stash, and it
///   builds like a stackbuild with a description, the merged one.
public struct KiwiBuildRequest: Sendable, Equatable {
    /// Absolute path of `--description`, if given.
    public var descriptionDirectory: String?
    /// Absolute path of `--target-dir`.
    public var targetDirectory: String
    /// `--stash` references in the order given (empty for an ordinary build).
    public var stashes: [String]
    /// `--from-registry`, where the stashes are pulled from.
    public var fromRegistry: String?
    /// The derived description in `descriptionDirectory`, if it holds one (its base is `stashes[0]`).
    public var derived: DerivedDescription?
    /// The remaining KIWI options in `--name=value` / `--flag` form, in the order given.
    public var options: [String]

    public var isStackbuild: Bool { !stashes.isEmpty }

    /// The KIWI command this request runs in the box.
    public var kiwiCommand: [String] {
        if isStackbuild && descriptionDirectory == nil { return ["system", "create"] }
        return ["system", "build"]
    }

    /// Parses and validates `arguments`; relative paths are made absolute against `currentDirectory`.
    public static func parse(_ arguments: [String], currentDirectory: String) throws -> KiwiBuildRequest {
        let known = Dictionary(
            (KiwiOptions.systemBuild + KiwiOptions.stackbuild).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var values: [(option: KiwiOption, value: String?)] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                throw BoxstackError(
                    .invalidArgument,
                    "unexpected KIWI argument '\(argument)': after -- give only options such as --description DIR --target-dir DIR.")
            }
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard let option = known[parts[0]] else {
                throw BoxstackError(
                    .invalidArgument,
                    "'\(parts[0])' is not an option of kiwi-ng system build; see 'kiwi-ng system build --help' for the valid ones.")
            }
            if !option.takesValue {
                if parts.count == 2 {
                    throw BoxstackError(.invalidArgument, "\(option.name) takes no value.")
                }
                values.append((option, nil))
                continue
            }
            var value: String
            if parts.count == 2 {
                value = parts[1]
            } else {
                guard index < arguments.count, !arguments[index].hasPrefix("--") else {
                    throw BoxstackError(.invalidArgument, "\(option.name) needs a value.")
                }
                value = arguments[index]
                index += 1
            }
            if value.isEmpty { throw BoxstackError(.invalidArgument, "\(option.name) needs a value.") }
            if !option.repeatable, values.contains(where: { $0.option == option }) {
                throw BoxstackError(.invalidArgument, "\(option.name) may be given only once.")
            }
            if option.name == "--description" || option.name == "--target-dir" {
                value = absolutePath(value, currentDirectory: currentDirectory)
            }
            values.append((option, value))
        }

        func single(_ name: String) -> String? { values.first(where: { $0.option.name == name })?.value }
        var stashes = values.filter { $0.option.name == "--stash" }.compactMap(\.value)
        let description = single("--description")
        guard let target = single("--target-dir") else {
            throw BoxstackError(.invalidArgument, "--target-dir DIR is required after --.")
        }
        var derived: DerivedDescription?
        if let description {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: description, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw BoxstackError(.notFound, "the description directory \(description) does not exist.")
            }
            derived = try DerivedDescription.recognize(inDirectory: description)
        }
        if let derived {
            guard stashes.isEmpty else {
                throw BoxstackError(
                    .invalidArgument,
                    "\(derived.path) is a derived description: it names its base stash itself (\(derived.baseLocation)); leave out --stash.")
            }
            stashes = [derived.baseStash]
        }
        if stashes.isEmpty {
            guard description != nil else {
                throw BoxstackError(
                    .invalidArgument, "--description DIR is required after -- (or --stash NAME for a stackbuild).")
            }
            if single("--from-registry") != nil {
                throw BoxstackError(
                    .invalidArgument, "--from-registry needs at least one --stash NAME[:TAG] (or a derived description).")
            }
        }
        let passed = values.filter { !["--description", "--target-dir", "--stash", "--from-registry"].contains($0.option.name) }
        if !stashes.isEmpty && description == nil {
            let createOptions = Set(KiwiOptions.systemCreate.map(\.name))
            if let offending = passed.first(where: { !createOptions.contains($0.option.name) }) {
                throw BoxstackError(
                    .invalidArgument,
                    "\(offending.option.name) needs --description: a rebuild from a stash alone runs kiwi-ng system create, which takes only --signing-key."
                )
            }
        }
        if let description, derived == nil, !stashes.isEmpty { try KiwiDescription(directory: description).checkBuildsOnExistingRoot() }
        return KiwiBuildRequest(
            descriptionDirectory: description, targetDirectory: target, stashes: stashes,
            fromRegistry: single("--from-registry"), derived: derived,
            options: passed.map { entry in entry.value.map { "\(entry.option.name)=\($0)" } ?? entry.option.name })
    }

    static func absolutePath(_ path: String, currentDirectory: String) -> String {
        let joined = path.hasPrefix("/") ? path : currentDirectory + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }
}
