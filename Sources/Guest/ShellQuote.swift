/// POSIX shell quoting: an SSH exec channel takes one command line that the remote user's shell
/// parses, so every argument must reach it as exactly one word, whatever bytes it holds.
public enum ShellQuote {
    /// One word for a POSIX shell. Plain words stay as they are; everything else is single-quoted,
    /// with each embedded `'` written as `'\''`.
    public static func quote(_ argument: String) -> String {
        if !argument.isEmpty, argument.unicodeScalars.allSatisfy(isPlain) { return argument }
        return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// A command line whose words, after the remote shell parses it, are exactly `arguments`.
    public static func join(_ arguments: [String]) -> String {
        arguments.map(quote).joined(separator: " ")
    }

    /// `=` is left out on purpose: an unquoted first word `A=B` would be a variable assignment.
    private static func isPlain(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-", ".", "/", ",", ":", "+", "@", "%": return true
        default: return false
        }
    }
}
