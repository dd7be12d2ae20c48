import ArgumentParser
public struct Boxstack: AsyncParsableCommand {
    public init() {}
    public func run() async throws {}
}
