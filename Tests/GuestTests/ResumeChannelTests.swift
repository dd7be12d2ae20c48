import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The controller's side of the resume port against a guest played by the test on the port's Unix
/// socket. The guest's real listener, Boxes/agent/overlay/usr/local/libexec/boxstack-resume, answers in
/// the VM tier (WarmBoxTests).
@Suite struct ResumeChannelTests {
    /// Accepts one connection, reads one line and answers `reply` (nothing when nil), then closes.
    final class FakeGuest: Sendable {
        let socketPath: String
        private let received = LockedBox<Data?>(nil)
        private let finished = DispatchSemaphore(value: 0)

        init(directory: TemporaryDirectory, reply: String?) throws {
            socketPath = directory.file("resume.sock")
            let listener = try UnixSocket.listen(at: socketPath)
            Thread.detachNewThread { [received, finished] in
                defer {
                    listener.close()
                    finished.signal()
                }
                let connection = accept(listener.descriptor, nil, nil)
                guard connection >= 0 else { return }
                defer { close(connection) }
                var line = Data()
                var byte: UInt8 = 0
                while read(connection, &byte, 1) == 1 {
                    if byte == UInt8(ascii: "\n") { break }
                    line.append(byte)
                }
                received.value = line
                if let reply { _ = Data((reply + "\n").utf8).withUnsafeBytes { FileDescriptor.sendAll($0, to: connection) } }
            }
        }

        /// The request line the guest read, once it has answered.
        func request() throws -> [String: Any] {
            finished.wait()
            let line = try #require(received.value)
            return try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        }
    }

    func seedDirectory(_ directory: TemporaryDirectory) throws -> String {
        let seed = directory.file("seed")
        try FileManager.default.createDirectory(atPath: seed, withIntermediateDirectories: true)
        for name in ResumeChannel.seedFiles { try Data("\(name) of this run\n".utf8).write(to: URL(fileURLWithPath: "\(seed)/\(name)")) }
        return seed
    }

    @Test func resumeSendsTheClockAndEverySeedFileAndReturnsOnceTheGuestAnswers() throws {
        let directory = try TemporaryDirectory("resume-channel")
        let guest = try FakeGuest(directory: directory, reply: #"{"ok": true}"#)
        let clock = Date(timeIntervalSince1970: 1_800_000_000.25)
        try ResumeChannel(socketPath: guest.socketPath).resume(
            clock: clock, seedDirectory: try seedDirectory(directory), deadline: .now + .seconds(10))
        let request = try guest.request()
        #expect(request["clock"] as? Double == 1_800_000_000.25)
        let files = try #require(request["files"] as? [String: String])
        #expect(Set(files.keys) == Set(ResumeChannel.seedFiles))
        for (name, encoded) in files {
            #expect(Data(base64Encoded: encoded) == Data("\(name) of this run\n".utf8))
        }
    }

    @Test func aPingChangesNothing() throws {
        let directory = try TemporaryDirectory("resume-ping")
        let guest = try FakeGuest(directory: directory, reply: #"{"ok": true}"#)
        try ResumeChannel(socketPath: guest.socketPath).ping(deadline: .now + .seconds(10))
        #expect(try guest.request()["ping"] as? Bool == true)
    }

    @Test func theGuestsErrorIsReported() throws {
        let directory = try TemporaryDirectory("resume-error")
        let guest = try FakeGuest(directory: directory, reply: #"{"error": "RuntimeError: boxstack-seed failed"}"#)
        let error = try #require(throws: BoxstackError.self) {
            try ResumeChannel(socketPath: guest.socketPath).resume(
                clock: Date(), seedDirectory: try seedDirectory(directory), deadline: .now + .seconds(10))
        }
        #expect(error.message == "The box's resume listener failed: RuntimeError: boxstack-seed failed")
    }

    @Test func aGuestThatHangsUpWithoutAnAnswerIsAnError() throws {
        let directory = try TemporaryDirectory("resume-hangup")
        let guest = try FakeGuest(directory: directory, reply: nil)
        let error = try #require(throws: BoxstackError.self) {
            try ResumeChannel(socketPath: guest.socketPath).ping(deadline: .now + .seconds(10))
        }
        #expect(error.message.contains("closed before the box answered"))
    }

    @Test func aMissingSeedFileFailsBeforeAnythingIsSent() throws {
        let directory = try TemporaryDirectory("resume-missing")
        let seed = try seedDirectory(directory)
        try FileManager.default.removeItem(atPath: seed + "/machine-id")
        let guest = try FakeGuest(directory: directory, reply: #"{"ok": true}"#)
        #expect(throws: (any Error).self) {
            try ResumeChannel(socketPath: guest.socketPath).resume(clock: Date(), seedDirectory: seed, deadline: .now + .seconds(10))
        }
        // The guest saw no request: the connection was never made.
        _ = try UnixSocket.connect(to: guest.socketPath).map { $0.close() }
        #expect(throws: (any Error).self) { try guest.request() }
    }

    @Test func nothingListeningEndsAtTheDeadline() throws {
        let directory = try TemporaryDirectory("resume-absent")
        let started = ContinuousClock.now
        let error = try #require(throws: BoxstackError.self) {
            try ResumeChannel(socketPath: directory.file("resume.sock")).ping(deadline: .now + .milliseconds(300))
        }
        #expect(error.code == .timeout)
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
