import BoxstackCore
import Foundation
import Guest
import TestSupport
import Testing

@Suite("POSIX shell quoting")
struct ShellQuoteTests {
    static let nastyArguments = [
        "plain", "with space", "it's", "\"double\"", "$HOME", "${PATH}", "`id`", "$(id)", "line\nbreak", "",
        "*", "?", "[a]", "semi;colon", "a|b", "a&b", "back\\slash", "tab\there", "-n", "--", "A=B", "~", "~root",
        "!bang", "#hash", "ünïcödé", "'", "''", "end'",
    ]

    @Test("plain words stay readable; the rest is single-quoted")
    func quotesOnlyWhatNeedsIt() {
        #expect(ShellQuote.quote("boxstack-agent") == "boxstack-agent")
        #expect(ShellQuote.quote("/usr/local/bin") == "/usr/local/bin")
        #expect(ShellQuote.quote("") == "''")
        #expect(ShellQuote.quote("a b") == "'a b'")
        #expect(ShellQuote.quote("it's") == "'it'\\''s'")
        #expect(ShellQuote.quote("A=B") == "'A=B'")
        #expect(ShellQuote.join(["mount", "9p", "my tag"]) == "mount 9p 'my tag'")
    }

    @Test("every argument reaches a local POSIX shell as exactly one word")
    func roundTripThroughLocalShell() throws {
        let line = ShellQuote.join(["printf", "%s\\0"] + Self.nastyArguments)
        let result = try Subprocess.run(["/bin/sh", "-c", line]).check()
        #expect(Self.words(result.standardOutput) == Self.nastyArguments)
    }

    @Test("every argument reaches the remote login shell over SSH as exactly one word")
    func roundTripThroughRemoteShell() throws {
        let session = try SSHTestHost().connect()
        let result = try session.run(ShellQuote.join(["printf", "%s\\0"] + Self.nastyArguments))
        #expect(result.status.isSuccess)
        #expect(Self.words(result.standardOutput) == Self.nastyArguments)
    }

    static func words(_ data: Data) -> [String] {
        var words = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if words.last == "" { words.removeLast() }
        return words
    }
}
