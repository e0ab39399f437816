import DeskgateAPI
import Foundation
import JSONRPC

/// An `agent.prompt` as the person is shown it, by `deskgate-prompt` in a terminal or a zenity
/// dialog: a few lines, each a heading in the helper's own words and a body.
///
/// Every string that came from a client, an agent or an app is sanitised (one line, bounded,
/// ``PromptText/sanitize(_:limit:)``) and, where a program chose it, fenced as its own words
/// (`«…»`, ``PromptText/fence(_:limit:)``). The verified program comes first. Every choice the
/// daemon offered is kept, also choices this build does not know (shown by their raw name).
public struct PromptView: Sendable {
    /// What the prompt asks for (`kind` in the params; missing means `request`).
    public enum Kind: Sendable, Equatable {
        /// One request of one program (the prompts deskgate always showed).
        case request
        /// A task: a program asks to do a scope of actions without asking each time.
        case task
        /// A paused task asks to go on.
        case resume
        /// A kind this build does not know (its raw name, sanitised).
        case other(String)
    }

    /// One line: the helper's heading and a body built from the params.
    public struct Line: Sendable, Equatable {
        public var heading: String
        public var body: String

        public init(heading: String, body: String) {
            self.heading = heading
            self.body = body
        }
    }

    public var kind: Kind
    public var promptID: String
    public var lines: [Line]
    /// The choices offered, in order, by their raw names (none dropped).
    public var choices: [String]
    public var timeout: Int

    /// Reads `agent.prompt` params; `now` is the time expiries are shown relative to.
    public init(_ params: JSONValue, now: Date = Date()) {
        func text(_ value: JSONValue?, limit: Int = 200) -> String? {
            value?.stringValue.map { PromptText.sanitize($0, limit: limit) }
        }
        func fenced(_ value: JSONValue?, limit: Int = 80) -> String? {
            value?.stringValue.map { PromptText.fence($0, limit: limit) }
        }
        promptID = params["prompt_id"]?.stringValue ?? ""
        switch params["kind"]?.stringValue {
        case nil, "request": kind = .request
        case "task": kind = .task
        case "resume": kind = .resume
        case let other?: kind = .other(PromptText.sanitize(other, limit: 40))
        }
        let offered = params["choices"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var seen = Set<String>()
        choices = offered.filter { seen.insert($0).inserted }
        if !choices.contains("deny") { choices.insert("deny", at: 0) }  // closing the dialog always denies
        timeout = Int(params["timeout_s"]?.intValue ?? 60)

        // The verified program first, then what it says of itself.
        let client = params["client"]
        var lines: [Line] = []
        var exe = text(client?["exe"], limit: 160) ?? ""
        if exe.isEmpty { exe = "(unidentified)" }
        let pid = client?["pid"]?.intValue.map { String($0) } ?? "?"
        let uid = client?["uid"]?.intValue.map { String($0) } ?? "?"
        lines.append(Line(heading: "Program", body: "\(exe)  (pid \(pid), uid \(uid))"))
        var started: [String] = []
        if let script = fenced(client?["script"], limit: 120) { started.append("script \(script)") }
        if let unit = fenced(client?["unit"], limit: 80) { started.append("unit \(unit)") }
        if !started.isEmpty { lines.append(Line(heading: "Started as", body: started.joined(separator: ", ") + " (advisory)")) }
        lines.append(Line(heading: "Calls itself",
                          body: fenced(client?["label"], limit: 60).map { "\($0) (its own words, not checked)" } ?? "(no label)"))

        switch kind {
        case .request, .other:
            if case .other(let name) = kind {
                lines.append(Line(heading: "Kind", body: "\(PromptText.fence(name)) (unknown to this helper: read with care)"))
            }
            lines.append(Line(heading: "Wants to", body: Self.request(params)))
            lines.append(Self.risk(params))
        case .task:
            lines.append(Line(heading: "Wants to", body: "do a task without asking you for each step, only within the scope below"))
            lines.append(Line(heading: "Task", body: (fenced(params["title"], limit: 80) ?? "(untitled)") + " (its own words)"))
            lines += Self.scope(params["scope"])
            lines.append(Line(heading: "Limits", body: Self.limits(params, now: now)))
        case .resume:
            var body = "go on with its paused task"
            if let title = fenced(params["title"], limit: 80) { body += " \(title) (its own words)" }
            lines.append(Line(heading: "Wants to", body: body))
            if let reason = text(params["reason"], limit: 200) { lines.append(Line(heading: "Paused", body: reason)) }
            if let preview = text(params["preview"], limit: 500) { lines.append(Line(heading: "Next step", body: preview)) }
            if params["scope"] != nil { lines += Self.scope(params["scope"]) }
            if params["expires_at"] != nil || params["max_actions"] != nil {
                lines.append(Line(heading: "Limits", body: Self.limits(params, now: now)))
            }
        }
        if let rule = text(params["rule"], limit: 80) {
            lines.append(Line(heading: "Rule", body: rule + (text(params["reason"], limit: 200).map { ": \($0)" } ?? "")))
        }
        self.lines = lines
    }

    /// The request in one sentence: the daemon's (`preview`), or one built here from the method
    /// and target for a daemon that sends none.
    static func request(_ params: JSONValue) -> String {
        if let preview = params["preview"]?.stringValue, !preview.isEmpty { return PromptText.sanitize(preview, limit: 500) }
        let method = params["action"]?["method"]?.stringValue ?? "?"
        var text = (PromptWords.action(method) ?? "use") + " (\(PromptText.sanitize(method, limit: 60)))"
        let target = params["target"]
        if let role = target?["role"]?.stringValue {
            text += " on the \(PromptWords.role(role))"
            if let name = target?["name"]?.stringValue, !name.isEmpty { text += " " + PromptText.fence(name, limit: 60) }
        }
        if let app = target?["app"]?.stringValue {
            text += " of \(PromptText.fence(app, limit: 60))"
            if let exe = target?["app_exe"]?.stringValue { text += " (\(PromptText.sanitize(exe, limit: 100)))" }
        }
        return text
    }

    static func risk(_ params: JSONValue) -> Line {
        let riskClass = params["action"]?["class"]?.stringValue ?? "?"
        let method = params["action"]?["method"]?.stringValue.map { "  [\(PromptText.sanitize($0, limit: 60))]" } ?? ""
        return Line(heading: "Risk", body: PromptWords.riskClass(riskClass) + method)
    }

    /// Most scope entries shown one by one; the rest are counted, never silently left out.
    public static let maxScopeLines = 12

    /// One line per scope entry, in plain words.
    static func scope(_ scope: JSONValue?) -> [Line] {
        let entries = scope?.arrayValue ?? []
        if entries.isEmpty { return [Line(heading: "Scope", body: "(none given: nothing would be allowed)")] }
        var lines = entries.prefix(maxScopeLines).enumerated().map { index, entry in
            Line(heading: entries.count == 1 ? "Scope" : "Scope \(index + 1)", body: scopeEntry(entry))
        }
        if entries.count > maxScopeLines {
            lines.append(Line(heading: "Scope", body: "and \(entries.count - maxScopeLines) more entries not shown here; deny if unsure"))
        }
        return lines
    }

    /// "press or click, type text in «Firefox» (/usr/lib/firefox/firefox), only the button
    /// «Send», only on https://mail.example, at most 5 times".
    public static func scopeEntry(_ entry: JSONValue) -> String {
        var actions: [String] = []
        for name in entry["actions"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            let words = PromptWords.action(name) ?? PromptText.fence(name, limit: 40)
            if !actions.contains(words) { actions.append(words) }
        }
        var text = actions.isEmpty ? "(no actions)" : actions.joined(separator: ", ")
        let exe = entry["app_exe"]?.stringValue.map { PromptText.sanitize($0, limit: 100) }
        if let app = entry["app"]?.stringValue {
            text += " in \(PromptText.fence(app, limit: 60)) (\(exe ?? "any program"))"
        } else if let exe {
            text += " in the app run from \(exe)"
        } else {
            text += " in any app"
        }
        let role = entry["role"]?.stringValue.map(PromptWords.role)
        let name = entry["name"]?.stringValue.map { PromptText.fence($0, limit: 60) }
        switch (role, name) {
        case let (role?, name?): text += ", only the \(role) \(name)"
        case let (role?, nil): text += ", only on elements of role \(PromptText.fence(role, limit: 40))"
        case let (nil, name?): text += ", only elements named \(name)"
        case (nil, nil): break
        }
        if let origin = entry["origin"]?.stringValue { text += ", only on web pages of \(PromptText.fence(origin, limit: 80))" }
        if let max = entry["max"]?.intValue { text += max == 1 ? ", at most once" : ", at most \(max) times" }
        return text
    }

    /// "until 10:32 UTC (in 30 min), at most 20 actions in all".
    static func limits(_ params: JSONValue, now: Date) -> String {
        var parts: [String] = []
        if let expiry = params["expires_at"] {
            parts.append(expires(expiry, now: now))
        } else {
            parts.append("no end time given")
        }
        if let max = params["max_actions"]?.intValue {
            parts.append(max == 1 ? "at most 1 action in all" : "at most \(max) actions in all")
        } else {
            parts.append("no limit on the number of actions given")
        }
        if let idle = params["idle_s"]?.intValue { parts.append("ends after \(idle) s without use") }
        return parts.joined(separator: ", ")
    }

    /// An expiry (RFC 3339 text or seconds since the epoch) as a time and how far away it is.
    static func expires(_ value: JSONValue, now: Date) -> String {
        var date: Date?
        if let seconds = value.doubleValue ?? value.intValue.map(Double.init) {
            date = Date(timeIntervalSince1970: seconds)
        } else if let text = value.stringValue {
            let parser = ISO8601DateFormatter()
            date = parser.date(from: text)
            if date == nil {
                parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                date = parser.date(from: text)
            }
            if date == nil { return "until \(PromptText.fence(text, limit: 40)) (not a time this helper can read)" }
        }
        guard let date else { return "until an unreadable time" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = Calendar.current.isDate(date, inSameDayAs: now) ? "HH:mm zzz" : "yyyy-MM-dd HH:mm zzz"
        let minutes = Int((date.timeIntervalSince(now) / 60).rounded())
        let distance: String
        if minutes < 0 {
            distance = "already passed"
        } else if minutes < 120 {
            distance = "in \(minutes) min"
        } else if minutes < 48 * 60 {
            distance = "in \(minutes / 60) h \(minutes % 60) min"
        } else {
            distance = "in \(minutes / (24 * 60)) days"
        }
        return "until \(formatter.string(from: date)) (\(distance))"
    }

    /// Longest line shown before a body continues on the next, indented (a dialog's label does
    /// not wrap: a long line would push the choices off screen).
    public static let lineWidth = 100

    /// `body` cut at spaces into pieces of at most `width` characters (a longer word is cut
    /// where it reaches the width).
    public static func wrap(_ body: String, width: Int) -> [String] {
        var pieces: [String] = []
        var current = ""
        for word in body.split(separator: " ", omittingEmptySubsequences: false) {
            var word = Substring(word)
            if !current.isEmpty, current.count + 1 + word.count > width {
                pieces.append(current)
                current = ""
            }
            while word.count > width {
                if !current.isEmpty { pieces.append(current); current = "" }
                pieces.append(String(word.prefix(width)))
                word = word.dropFirst(width)
            }
            current += current.isEmpty ? String(word) : " " + word
        }
        pieces.append(current)
        return pieces
    }

    /// The lines for a terminal: headings aligned, long bodies continued on indented lines.
    public var terminalLines: [String] {
        let width = lines.map(\.heading.count).max() ?? 0
        let indent = String(repeating: " ", count: width + 3)
        return lines.flatMap { line in
            Self.wrap(line.body, width: Self.lineWidth).enumerated().map { index, piece in
                index == 0 ? line.heading.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + piece : indent + piece
            }
        }
    }

    /// The text for zenity's `--text`: headings in bold (no text from a program can be bold:
    /// its markup is escaped), every body escaped for it (``PromptText/markup(_:)``), long
    /// bodies continued on indented lines, and what the fences mean.
    public var markupText: String {
        var out: [String] = []
        for line in lines {
            for (index, piece) in Self.wrap(line.body, width: Self.lineWidth).enumerated() {
                out.append(index == 0 ? "<b>\(PromptText.markup(line.heading)):</b> \(PromptText.markup(piece))"
                                      : "        " + PromptText.markup(piece))
            }
        }
        out.append("")
        out.append("<small>\(PromptText.markup(Self.legend))</small>")
        return out.joined(separator: "\n")
    }

    /// What the fences mean, shown under every prompt.
    public static let legend = "Text in «…» was chosen by the program or the app; deskgate did not check it."

    /// The dialog's or section's title.
    public var title: String {
        switch kind {
        case .request, .other: "deskgate: permission request"
        case .task: "deskgate: task approval"
        case .resume: "deskgate: resume a task"
        }
    }
}

/// The choices a prompt may offer, with what each one means.
public enum PromptChoice {
    /// The choices this build knows.
    public static let known = ["deny", "allow_once", "allow_session", "allow_1h", "allow_always", "approve_task", "resume"]

    /// The key that answers it in a terminal; unknown choices answer to their position (1–9)
    /// or their raw name.
    public static func key(_ choice: String, at index: Int) -> String {
        switch choice {
        case "deny": "d"
        case "allow_once": "o"
        case "allow_session": "s"
        case "allow_1h": "h"
        case "allow_always": "a"
        case "approve_task": "t"
        case "resume": "r"
        default: String(index + 1)
        }
    }

    /// The choice and its consequence, e.g. "Allow once — this request only". An unknown
    /// choice is shown by its raw name (sanitised and fenced, as the daemon sent it).
    public static func label(_ choice: String) -> String {
        switch choice {
        case "deny": "Deny — refuse; the program is told no"
        case "allow_once": "Allow once — this request only"
        case "allow_session": "Allow while it stays connected — the same request, until this program disconnects"
        case "allow_1h": "Allow for 1 hour — the same request, for the next hour"
        case "allow_always": "Always allow exactly this — remembered until you revoke it"
        case "approve_task": "Approve the task — the scope above, within its limits, until it ends"
        case "resume": "Resume — the paused task goes on within its scope"
        default: "\(PromptText.fence(choice, limit: 40)) — a choice this helper does not know; deskgate offered it"
        }
    }
}
