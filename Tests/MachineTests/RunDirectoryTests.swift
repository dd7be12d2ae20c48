import BoxstackCore
import Foundation
import Machine
import TestSupport
import Testing

@Suite struct RunDirectoryTests {
    @Test func runDirectoryIsPrivateAndLockedAgainstOtherProcesses() throws {
        let runs = try TemporaryDirectory("runs")
        let run = try RunDirectory.create(under: runs.path)
        defer { run.remove() }
        let attributes = try FileManager.default.attributesOfItem(atPath: run.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        #expect(run.domainName == "boxstack-\(run.id)")
        #expect(run.id.count == 12)
        // Another process cannot take the owner lock while this run lives.
        let other = try Subprocess.run(["flock", "--nonblock", "\(run.path)/owner.lock", "true"])
        #expect(!other.status.isSuccess)
    }

    @Test func garbageCollectionRemovesDeadRunsAndKeepsLiveOnes() throws {
        let runs = try TemporaryDirectory("runs")
        let live = try RunDirectory.create(under: runs.path)
        defer { live.remove() }
        var dead: RunDirectory? = try RunDirectory.create(under: runs.path)
        let deadID = try #require(dead?.id)
        let deadPath = try #require(dead?.path)
        try dead?.makeSubdirectories()
        FileManager.default.createFile(atPath: "\(deadPath)/seed/authorized_keys", contents: Data("key\n".utf8))
        // Dropping the object without remove() is what a killed controller leaves: the directory, lock free.
        dead = nil

        let removed = try RunDirectory.collectGarbage(in: runs.path, connection: nil)
        #expect(removed == [deadID])
        #expect(!FileManager.default.fileExists(atPath: deadPath))
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(try RunDirectory.collectGarbage(in: runs.path, connection: nil).isEmpty)
    }

    @Test func directoryStillBeingCreatedIsLeftAlone() throws {
        let runs = try TemporaryDirectory("runs")
        try FileManager.default.makeDirectory(runs.file("abcdefabcdef"), mode: 0o700)
        #expect(try RunDirectory.collectGarbage(in: runs.path, connection: nil).isEmpty)
        #expect(FileManager.default.fileExists(atPath: runs.file("abcdefabcdef")))
    }

    @Test func removeDeletesEverythingAndIsIdempotent() throws {
        let runs = try TemporaryDirectory("runs")
        let run = try RunDirectory.create(under: runs.path)
        try run.makeSubdirectories()
        try FileManager.default.makeDirectory(run.seedDirectory + "/readonly", mode: 0o500)
        run.remove()
        run.remove()
        #expect(!FileManager.default.fileExists(atPath: run.path))
    }
}

@Suite struct DiskAndPortTests {
    /// The guest writes to the overlay; the box disk keeps its exact bytes.
    @Test func overlayKeepsTheBoxDiskUntouched() throws {
        let directory = try TemporaryDirectory("overlay")
        let base = directory.file("box.qcow2")
        let overlay = directory.file("overlay.qcow2")
        try Subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "16M"]).check()
        let before = try ContentDigest.ofFile(base).digest
        try DiskOverlay.create(base: base, at: overlay)
        try Subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", overlay]).check()
        #expect(try ContentDigest.ofFile(base).digest == before)
        let info = try Subprocess.run(["qemu-img", "info", "--output=json", overlay]).check().output
        #expect(info.contains("\"backing-filename\": \"\(base)\""))
        #expect(info.contains("\"backing-filename-format\": \"qcow2\""))
    }

    @Test func overlayNeedsAnExistingAbsoluteBoxDisk() throws {
        let directory = try TemporaryDirectory("overlay")
        #expect(throws: BoxstackError.self) { try DiskOverlay.create(base: "relative.qcow2", at: directory.file("o.qcow2")) }
        #expect {
            try DiskOverlay.create(base: directory.file("missing.qcow2"), at: directory.file("o.qcow2"))
        } throws: { "\($0)".contains("does not exist; fetch the box again") }
    }

    @Test func ephemeralPortsAreDistinctUsableLoopbackPorts() throws {
        let ports = try (0..<5).map { _ in try LoopbackPort.ephemeral() }
        #expect(ports.allSatisfy { $0 > 1024 && $0 < 65536 })
        #expect(Set(ports).count > 1)
    }

    @Test func consoleTailDropsTerminalEscapesAndKeepsTheLastLines() throws {
        let directory = try TemporaryDirectory("console")
        let log = directory.file("console.log")
        let text = "\u{1B}[2J\u{1B}[0mSeaBIOS\r\n" + (1...30).map { "line \($0)" }.joined(separator: "\r\n") + "\r\n\r\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: log))
        #expect(ConsoleLog.tail(of: log, lines: 3) == "line 28\nline 29\nline 30")
        #expect(ConsoleLog.tail(of: log, lines: 40).hasPrefix("SeaBIOS\nline 1\n"))
        #expect(ConsoleLog.tail(of: directory.file("missing"), lines: 3) == "")
    }
}
