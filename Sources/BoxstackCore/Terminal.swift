/// Text from outside (entry names, registry messages, file names) made safe to print: control
/// characters, which could move the cursor or retitle a terminal, are shown as escapes.
public enum Terminal {
    /// `text` in double quotes, with quotes, backslashes and control characters escaped.
    public static func quoted(_ text: String) -> String {
        "\"" + escaped(text, quotes: true) + "\""
    }

    /// `text` with its control characters (C0, DEL, C1) escaped as `\u{XX}`; newlines and tabs as `\n`, `\t`.
    public static func sanitized(_ text: String) -> String {
        escaped(text, quotes: false)
    }

    private static func escaped(_ text: String, quotes: Bool) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            case "\"" where quotes: result += "\\\""
            case "\\" where quotes: result += "\\\\"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
