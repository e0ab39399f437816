import MCP

/// Text an app chose (element names, window titles, text, page content, and the daemon's
/// messages that quote them), kept apart from deskgate's own words in a tool result.
struct AppContent: Sendable, Equatable {
    /// What the text is, for the fence header: `outline`, `apps`, `elements`, `text`,
    /// `result` (an action's element and changes) or `message` (the daemon's error message).
    enum Kind: String, Sendable {
        case outline, apps, elements, text, result, message
    }

    var kind: Kind
    /// The app as the request named it, when the text comes from one app.
    var app: String?
    /// The text as the app gave it (not yet escaped).
    var text: String
}

/// A tool call's answer: deskgate's own words, then what apps said, each in its own fence.
struct ToolOutcome: Sendable, Equatable {
    /// deskgate's own words. Nothing an app chose appears here: only refs, counts, role and
    /// state names (AT-SPI's fixed vocabularies), the model's own arguments (quoted), and the
    /// names of policy rules.
    var text: String
    var appContent: [AppContent] = []
    var isError: Bool

    init(text: String, appContent: [AppContent] = [], isError: Bool) {
        self.text = text
        self.appContent = appContent.filter { !$0.text.isEmpty }
        self.isError = isError
    }

    /// The same outcome with `transform` applied to every text, before any escaping.
    func mapTexts(_ transform: (String) -> String) -> ToolOutcome {
        ToolOutcome(text: transform(text),
                    appContent: appContent.map { AppContent(kind: $0.kind, app: $0.app, text: transform($0.text)) },
                    isError: isError)
    }

    /// The MCP content blocks: deskgate's words first, then one fenced block per app text.
    func mcpContent(tool: String) -> [Tool.Content] {
        var blocks: [Tool.Content] = [
            // Priority 1: denials, cut-off notices and what to do next must not be dropped.
            .text(text: text, annotations: .init(priority: 1), _meta: Metadata(additionalFields: ["deskgate/source": "deskgate"])),
        ]
        for content in appContent {
            var meta: [String: Value] = ["deskgate/source": "app", "deskgate/kind": .string(content.kind.rawValue)]
            if let app = content.app { meta["deskgate/app"] = .string(app) }
            blocks.append(.text(text: Fence.fenced(content, tool: tool), annotations: nil, _meta: Metadata(additionalFields: meta)))
        }
        return blocks
    }

    /// All blocks as one string, as a host that joins them shows it (for tests and logs).
    func joined(tool: String) -> String {
        mcpContent(tool: tool).map { block in
            if case .text(let text, _, _) = block { return text }
            return ""
        }.joined(separator: "\n")
    }
}

/// The fence around app text in tool results (docs/mcp.md, "What comes from apps").
///
/// ```
/// <<<deskgate:app-content tool="snapshot" kind="outline" app="gedit">>>
/// …the app's text, escaped…
/// <<<deskgate:end>>>
/// ```
///
/// Inside, the text is the app's, escaped so that it never contains `<<<`: a backslash is
/// inserted before every `<` or `\` that follows `<<`. So an app can neither close the fence
/// early nor open a fake one, whatever case or attributes it tries. ``unescape(_:)`` gives the
/// app's text back.
enum Fence {
    static let end = "<<<deskgate:end>>>"
    static let opening = "<<<deskgate:app-content"

    static func fenced(_ content: AppContent, tool: String) -> String {
        var body = content.text
        // Outline-like text is read line by line: a line separator other than \n inside a name
        // would look like a line of its own.
        // read_text's text is given exactly; the rest is line-based.
        if content.kind != .text && content.kind != .message {
            body = lineSafe(body)
            if body.hasSuffix("\n") { body.removeLast() }
        }
        return header(tool: tool, kind: content.kind, app: content.app) + "\n" + escape(body) + "\n" + end
    }

    static func header(tool: String, kind: AppContent.Kind, app: String?) -> String {
        var line = opening + " tool=" + attribute(tool) + " kind=" + attribute(kind.rawValue)
        if let app { line += " app=" + attribute(app) }
        return line + ">>>"
    }

    /// `text` with a backslash before every `<` or `\` that follows two `<` (in `text`).
    static func escape(_ text: String) -> String {
        guard text.contains("<<") else { return text }
        var out = String.UnicodeScalarView()
        var previous: (Unicode.Scalar?, Unicode.Scalar?) = (nil, nil)
        for scalar in text.unicodeScalars {
            if previous == ("<", "<"), scalar == "<" || scalar == "\\" { out.append("\\") }
            out.append(scalar)
            previous = (previous.1, scalar)
        }
        return String(out)
    }

    /// The app's text from escaped fence content: a backslash after `<<` escapes the next
    /// character.
    static func unescape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        var previous: (Unicode.Scalar?, Unicode.Scalar?) = (nil, nil)
        while let scalar = scalars.next() {
            var kept = scalar
            if scalar == "\\", previous == ("<", "<"), let next = scalars.next() { kept = next }
            out.append(kept)
            previous = (previous.1, kept)
        }
        return String(out)
    }

    /// A header attribute value: a JSON string in which `<`, `>` and every control or line
    /// separator character are written as `\uXXXX`, so it cannot end the header or the line.
    static func attribute(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "<", ">", "&": out += unicodeEscape(scalar)
            default:
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator: out += unicodeEscape(scalar)
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Line and paragraph separators other than `\n` (and vertical tab, form feed, NEL) as spaces.
    static func lineSafe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isOtherLineBreak) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { isOtherLineBreak($0) ? " " : $0 }))
    }

    private static func isOtherLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029: true
        default: false
        }
    }

    private static func unicodeEscape(_ scalar: Unicode.Scalar) -> String {
        if scalar.value > 0xFFFF {
            // JSON spells these as a UTF-16 surrogate pair.
            let v = scalar.value - 0x10000
            return unicodeEscape(0xD800 + (v >> 10)) + unicodeEscape(0xDC00 + (v & 0x3FF))
        }
        return unicodeEscape(scalar.value)
    }

    private static func unicodeEscape(_ value: UInt32) -> String {
        let hex = String(value, radix: 16)
        return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}

/// Quoting strings inside text.
enum Quote {
    /// `s` in double quotes, escaped as the daemon's outline does it (`\"`, `\\`, line breaks as
    /// spaces). For app text inside a fence (which is escaped as a whole).
    static func plain(_ s: String) -> String {
        var out = "\""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n", "\r", "\r\n", "\t": out += " "
            default: out.append(ch)
            }
        }
        return Fence.lineSafe(out) + "\""
    }

    /// The model's own argument inside deskgate's words: quoted as ``plain(_:)``, with fence
    /// markers broken, so even an argument copied from a page can neither end the quote nor
    /// look like a fence.
    static func quoted(_ s: String) -> String { Fence.escape(plain(s)) }

    /// A ref as deskgate issues them (letters, digits, `-`, `_`) as it is; anything else quoted.
    static func bare(_ ref: String) -> String {
        let plain = !ref.isEmpty && ref.count <= 64
            && ref.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
        return plain ? ref : quoted(ref)
    }

    /// An AT-SPI role or state name as deskgate writes them (lower-case words); anything else,
    /// which deskgate never writes, as `fallback`.
    static func vocabulary(_ name: String?, fallback: String) -> String {
        guard let name, !name.isEmpty, name.count <= 40,
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == " " || $0 == "-" })
        else { return fallback }
        return name
    }
}
