/// Makes strings from clients and apps safe to show in a prompt: a terminal or dialog must show
/// exactly what the string is, never what it pretends to be.
///
/// Three layers, applied in this order by whoever draws a prompt:
/// 1. ``sanitize(_:limit:)``: one line of visible characters, bounded in length;
/// 2. ``fence(_:limit:)``: marks it as someone else's words, `«…»`, so it can never pose as the
///    daemon's or the helper's own text;
/// 3. for a toolkit that interprets text, its escaping: ``markup(_:)`` for GTK labels drawn by
///    zenity (GLib backslash escapes and Pango markup).
public enum PromptText {
    /// Scalars that reorder text (bidi embeddings, overrides, isolates and marks).
    static let bidiControls: Set<UInt32> = [
        0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
    ]
    /// Invisible scalars that make two strings look alike.
    static let invisibles: Set<UInt32> = [0x00AD, 0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C, 0x200D,
                                          0x2060, 0x3164, 0xFEFF, 0xFFA0]
    /// The fence around words a program or app chose itself.
    public static let fenceOpen: Character = "«"
    public static let fenceClose: Character = "»"
    /// Combining marks kept on one character; more are shown as escapes (they stack upwards
    /// and downwards over the lines around them).
    static let maxMarksPerCharacter = 2

    /// Whether a scalar is shown as an escape rather than drawn: controls (C0, DEL, C1: escape
    /// sequences, newlines, tabs), every line and paragraph separator (U+2028, U+2029, U+0085),
    /// format characters (bidi controls, zero-width and other invisibles, tags), private-use,
    /// unassigned and non-character code points.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x20 || (value >= 0x7F && value < 0xA0) { return true }
        if bidiControls.contains(value) || invisibles.contains(value) { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
            return true
        default:
            return scalar.properties.isNoncharacterCodePoint
        }
    }

    /// How an escaped scalar is shown: `⟨U+2028⟩`. No backslash, so no toolkit turns it back
    /// into the character.
    static func escape(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "⟨U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "⟩"
    }

    /// One line of display text: control characters (C0, DEL, C1, including ESC and newlines),
    /// line and paragraph separators, bidi controls, invisible and other format characters are
    /// shown as `⟨U+XXXX⟩`; runs of white space become one space (so spaces cannot push text
    /// onto a line of its own where a label wraps); more than two combining marks on one
    /// character are shown as escapes; the result is cut to `limit` characters shown (an escape
    /// counts with its length) with "…".
    /// Invalid UTF-8 never reaches here (Swift strings are valid).
    public static func sanitize(_ text: String, limit: Int = 200) -> String {
        var out = ""
        var count = 0
        var lastWasSpace = false
        var marks = 0
        for scalar in text.unicodeScalars {
            let piece: String
            var takesRoom = true
            let category = scalar.properties.generalCategory
            if needsEscape(scalar) {
                piece = escape(scalar)
                lastWasSpace = false
                marks = 0
            } else if category == .spaceSeparator {
                if lastWasSpace { continue }
                lastWasSpace = true
                piece = " "
                marks = 0
            } else if category == .nonspacingMark || category == .enclosingMark {
                marks += 1
                // A mark kept on its character takes no room of its own; one with nothing to
                // sit on, or one too many, is shown as an escape.
                if marks <= maxMarksPerCharacter, count > 0, !lastWasSpace {
                    piece = String(scalar)
                    takesRoom = false
                } else {
                    piece = escape(scalar)
                }
            } else {
                piece = String(scalar)
                lastWasSpace = false
                marks = 0
            }
            if takesRoom {
                // The limit is in characters shown: an escape counts with its full length.
                let width = piece.count
                if count + width > limit {
                    out += "…"
                    return out
                }
                count += width
            }
            out += piece
        }
        return out
    }

    /// `sanitize` applied to an optional, with a placeholder for nil.
    public static func sanitize(_ text: String?, placeholder: String, limit: Int = 200) -> String {
        text.map { sanitize($0, limit: limit) } ?? placeholder
    }

    /// Words a program or app chose itself, sanitised and fenced: `«Calculator»`. The fence
    /// characters inside are escaped, so the text cannot close its fence early and continue as
    /// if it were the prompt's own words.
    public static func fence(_ text: String, limit: Int = 80) -> String {
        var inner = ""
        for scalar in sanitize(text, limit: limit).unicodeScalars {
            if Character(scalar) == fenceOpen || Character(scalar) == fenceClose {
                inner += escape(scalar)
            } else {
                inner.unicodeScalars.append(scalar)
            }
        }
        return "\(fenceOpen)\(inner)\(fenceClose)"
    }

    /// Text for a GTK label that zenity shows with `--text`: zenity runs it through
    /// `g_strcompress` (so `\n`, `\t` and octal escapes such as `\342\200\250` become characters)
    /// and then parses it as Pango markup (even with `--no-markup`, in its list dialog). Markup
    /// characters become entities and every backslash is doubled, so the label shows exactly
    /// `text`. Apply it to sanitised text; it does not remove line breaks.
    public static func markup(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\\": out += "\\\\"
            default: out.append(character)
            }
        }
        return out
    }
}
