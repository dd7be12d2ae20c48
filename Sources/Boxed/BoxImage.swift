import Foundation
import Machine

/// The files and defaults of one box architecture, ready to boot.
public struct BoxImage: Sendable, Equatable {
    public var name: String
    public var architecture: MachineArchitecture
    public var kernel: String
    public var initrd: String
    public var disk: String
    /// Kernel arguments from the catalog, without the console (added from `console`).
    public var kernelArguments: [String]
    public var console: String
    public var memoryBytes: Int64
    public var cpus: Int
    /// The verified digests of the kernel, initrd and disk ("sha256:…"), when the box came from the cache:
    /// what a warm image of the box is keyed by.
    public var fileDigests: [String]

    public init(
        name: String, architecture: MachineArchitecture, kernel: String, initrd: String, disk: String,
        kernelArguments: [String], console: String, memoryBytes: Int64, cpus: Int, fileDigests: [String] = []
    ) {
        self.name = name
        self.architecture = architecture
        self.kernel = kernel
        self.initrd = initrd
        self.disk = disk
        self.kernelArguments = kernelArguments
        self.console = console
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.fileDigests = fileDigests
    }
}
