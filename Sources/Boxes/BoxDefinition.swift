import BoxstackCore
import Foundation

/// One box of the catalog: a VM image that runs boxed builds, with its resources and per-architecture files.
public struct BoxDefinition: Sendable, Equatable {
    public var name: String

    /// Whether `name` can name a box: lower-case letters and digits, then also '.', '_' or '-' (so
    /// never `.`, `..`, a path or an empty name).
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 64 else { return false }
        func isLowerAlphanumeric(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) }
        return isLowerAlphanumeric(first) && name.unicodeScalars.allSatisfy { isLowerAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }
    public var description: String
    /// Guest memory in bytes (the catalog writes it with units, such as `4G`).
    public var memory: Int64
    public var cpus: Int
    /// The serial console the kernel logs to, unless an architecture overrides it.
    public var console: String
    /// Files per architecture (`x86_64`, `aarch64`), in catalog order.
    public var architectures: [BoxArchitecture]
    /// The catalog file this entry came from.
    public var catalogPath: String

    public init(
        name: String, description: String, memory: Int64, cpus: Int, console: String,
        architectures: [BoxArchitecture], catalogPath: String
    ) {
        self.name = name
        self.description = description
        self.memory = memory
        self.cpus = cpus
        self.console = console
        self.architectures = architectures
        self.catalogPath = catalogPath
    }

    /// The files for `arch`, or an error naming the architectures the box has.
    public func architecture(_ arch: String) throws -> BoxArchitecture {
        guard let found = architectures.first(where: { $0.arch == arch }) else {
            let known = architectures.map(\.arch).joined(separator: ", ")
            throw BoxstackError(.notFound, "The box \(name) has no \(arch) variant (it has: \(known)).")
        }
        return found
    }
}

/// A box's files for one architecture.
public struct BoxArchitecture: Sendable, Equatable {
    public var arch: String
    /// Where the box is published; nil for a box that has to be built (see `BoxCache.noSource`).
    public var source: BoxSource?
    /// The `source:` text as written in the catalog ("" without one).
    public var sourceText: String
    public var kernel: String
    public var initrd: String
    public var disk: String
    /// Kernel arguments other than `console=`, which comes from `console`.
    public var cmdline: [String]
    /// A console that differs from the box's (aarch64 uses `ttyAMA0`).
    public var console: String?

    public init(
        arch: String, source: BoxSource?, sourceText: String, kernel: String, initrd: String, disk: String,
        cmdline: [String], console: String? = nil
    ) {
        self.arch = arch
        self.source = source
        self.sourceText = sourceText
        self.kernel = kernel
        self.initrd = initrd
        self.disk = disk
        self.cmdline = cmdline
        self.console = console
    }

    /// The three files, with the role each plays.
    public var files: [(role: BoxFileRole, name: String)] {
        [(.kernel, kernel), (.initrd, initrd), (.disk, disk)]
    }
}

/// What a box file is for.
public enum BoxFileRole: String, Sendable, Codable, CaseIterable {
    case kernel, initrd, disk
}
