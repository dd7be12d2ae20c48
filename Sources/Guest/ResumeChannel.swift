import BoxstackCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The controller's side of the resume port (Docs/guest-agent.md): a virtio-serial port whose host end
/// is a Unix socket QEMU listens on in the run directory. A box restored from a warm image learns its
/// run's clock and seed through it, without a login with the image's keys.
public struct ResumeChannel: Sendable {
    /// The port's name in the guest: `/dev/virtio-ports/org.boxstack.resume`.
    public static let portName = "org.boxstack.resume"
    /// The seed files sent, in the run's seed directory; the guest's `boxstack-resume` needs each one.
    public static let seedFiles = ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys", "hostname", "machine-id", "entropy"]

    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// Asks the guest's listener to answer: it is waiting on the port once this returns.
    public func ping(deadline: ContinuousClock.Instant) throws {
        try exchange(Data(#"{"ping": true}"#.utf8), deadline: deadline)
    }

    /// Sends the host's `clock` and the seed files of `seedDirectory`, and waits until the guest has set
    /// its clock, installed the seed and reseeded its random generator.
    public func resume(clock: Date, seedDirectory: String, deadline: ContinuousClock.Instant) throws {
        var files: [String: String] = [:]
        for name in Self.seedFiles {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: "\(seedDirectory)/\(name)")).base64EncodedString()
        }
        let request = try JSONSerialization.data(
            withJSONObject: ["clock": clock.timeIntervalSince1970, "files": files], options: [.sortedKeys])
        try exchange(request, deadline: deadline)
    }

    /// Writes `request` as one line and reads the one-line answer.
    private func exchange(_ request: Data, deadline: ContinuousClock.Instant) throws {
        let socket = try connect(deadline: deadline)
        defer { socket.close() }
        let failure = (request + Data("\n".utf8)).withUnsafeBytes { FileDescriptor.sendAll($0, to: socket.descriptor) }
        guard failure == 0 else {
            throw BoxstackError(.guestFailed, "Writing to the box's resume port failed: \(String(cString: strerror(failure))).")
        }
        let line = try readLine(from: socket.descriptor, deadline: deadline)
        let answer = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any]
        if answer?["ok"] as? Bool == true { return }
        let reason = answer?["error"] as? String ?? "it answered \(String(decoding: line, as: UTF8.self))"
        throw BoxstackError(.guestFailed, "The box's resume listener failed: \(reason)")
    }

    /// QEMU creates the socket while the domain starts; wait for it until `deadline`.
    private func connect(deadline: ContinuousClock.Instant) throws -> UnixSocket {
        while true {
            if let socket = try UnixSocket.connect(to: socketPath) { return socket }
            guard ContinuousClock.now < deadline else {
                throw BoxstackError(.timeout, "Nothing listens on the box's resume port \(socketPath).")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    private func readLine(from descriptor: Int32, deadline: ContinuousClock.Instant) throws -> Data {
        var line = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while line.last != UInt8(ascii: "\n") {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw BoxstackError(.timeout, "The box did not answer on its resume port within the time allowed.")
            }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, max(remaining.milliseconds, 1))
            if ready < 0 && errno != EINTR { throw Self.failure("Waiting on the resume port") }
            guard ready > 0 else { continue }
            let count = read(descriptor, &buffer, buffer.count)
            if count < 0 && errno != EINTR { throw Self.failure("Reading the resume port") }
            if count == 0 { throw BoxstackError(.guestFailed, "The box's resume port closed before the box answered.") }
            if count > 0 { line.append(contentsOf: buffer[0..<count]) }
        }
        return line.dropLast()
    }

    private static func failure(_ what: String) -> BoxstackError {
        BoxstackError(.guestFailed, "\(what) failed: \(String(cString: strerror(errno))).")
    }
}
