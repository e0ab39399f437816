/// Makes strings from clients and apps safe to show in a prompt: a terminal or dialog must show
/// exactly what the string is, never what it pretends to be.
public enum PromptText {
    /// Scalars that reorder text (bidi embeddings, overrides, isolates and marks).
    static let bidiControls: Set<UInt32> = [
        0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
    ]
    /// Invisible scalars that make two strings look alike.
    static let invisibles: Set<UInt32> = [0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]

    /// One line of display text: control characters (C0, DEL, C1, including ESC and newlines),
    /// bidi controls and invisible characters are shown as `\u{XXXX}` escapes, invalid UTF-8
    /// never reaches here (Swift strings are valid), and the result is cut to `limit`
    /// characters with "…".
    public static func sanitize(_ text: String, limit: Int = 200) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let piece: String
            if value < 0x20 || value == 0x7F || (value >= 0x80 && value < 0xA0)
                || bidiControls.contains(value) || invisibles.contains(value) {
                piece = "\\u{" + String(value, radix: 16, uppercase: true) + "}"
            } else {
                piece = String(scalar)
            }
            if count + 1 > limit {
                out += "…"
                return out
            }
            out += piece
            count += 1
        }
        return out
    }

    /// `sanitize` applied to an optional, with a placeholder for nil.
    public static func sanitize(_ text: String?, placeholder: String, limit: Int = 200) -> String {
        text.map { sanitize($0, limit: limit) } ?? placeholder
    }
}
