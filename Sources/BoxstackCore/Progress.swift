import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A one-line progress bar on standard error, drawn only when standard error is a terminal.
public final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let total: Int64?
    private let enabled: Bool
    private let lock = NSLock()
    private var current: Int64 = 0
    private var lastDraw = Date.distantPast
    private let started = Date()

    public init(label: String, total: Int64?, enabled: Bool = ProgressBar.isTerminal) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    /// True when standard error is a terminal.
    public static var isTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    public func advance(by count: Int64) {
        lock.withLock {
            current += count
            drawIfDue(force: false)
        }
    }

    public func set(_ value: Int64) {
        lock.withLock {
            current = value
            drawIfDue(force: false)
        }
    }

    /// Draws the final state and ends the line.
    public func finish() {
        lock.withLock {
            guard enabled else { return }
            drawIfDue(force: true)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    private func drawIfDue(force: Bool) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let rate = Double(current) / max(now.timeIntervalSince(started), 0.001)
        var line = "\r\(label) "
        if let total, total > 0 {
            let fraction = min(1, Double(current) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] "
            line += String(format: "%3.0f%% ", fraction * 100)
            line += "\(ByteCount.format(current))/\(ByteCount.format(total))"
        } else {
            line += ByteCount.format(current)
        }
        line += " \(ByteCount.format(Int64(rate)))/s\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// Human-readable byte counts and sizes with units (`4G`, `512M`).
public enum ByteCount {
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// Parses `4G`, `512M`, `2048K`, `1T` or plain bytes; units are powers of 1024.
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let suffixes: [(String, Int64)] = [
            ("TIB", 1 << 40), ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10),
            ("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10),
            ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1),
        ]
        for (suffix, factor) in suffixes where trimmed.hasSuffix(suffix) {
            guard let number = Int64(trimmed.dropLast(suffix.count)), number > 0 else { return nil }
            return number * factor
        }
        guard let number = Int64(trimmed), number > 0 else { return nil }
        return number
    }
}
