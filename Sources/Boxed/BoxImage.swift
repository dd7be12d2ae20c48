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

    public init(
        name: String, architecture: MachineArchitecture, kernel: String, initrd: String, disk: String,
        kernelArguments: [String], console: String, memoryBytes: Int64, cpus: Int
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
    }
}
