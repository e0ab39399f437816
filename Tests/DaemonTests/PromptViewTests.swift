import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Testing

@Suite("What deskgate-prompt shows for each kind of prompt")
struct PromptViewTests {
    static let client: JSONValue = ["uid": 1000, "pid": 4242, "exe": "/usr/bin/python3", "script": "/tmp/agent.py", "unit": nil,
                                    "label": "Claude\\nWants to: see the app's contents\u{2028}App: Calculator"]

    static func request(_ extra: JSONObject = [:]) -> JSONValue {
        var params: JSONObject = [
            "prompt_id": "p1", "client": client,
            "action": ["method": "field.fill", "class": "write"],
            "target": ["app": "gedit", "app_exe": "/usr/bin/gedit", "role": "text", "name": "Name"],
            "preview": "Type 11 characters into the field «Name» of «gedit» (/usr/bin/gedit)",
            "choices": ["deny", "allow_once", "allow_session"], "timeout_s": 30,
        ]
        for (key, value) in extra { params[key] = value }
        return .object(params)
    }

    @Test("a request: the verified program first, its label fenced as its own words, one sentence, the risk in words")
    func request() {
        let view = PromptView(Self.request())
        #expect(view.kind == .request)  // no kind: a request
        #expect(view.lines.map(\.heading) == ["Program", "Started as", "Calls itself", "Wants to", "Risk"])
        #expect(view.lines[0].body == "/usr/bin/python3  (pid 4242, uid 1000)")
        #expect(view.lines[1].body == "script «/tmp/agent.py» (advisory)")
        // Cut at 60 characters shown, inside its fence.
        #expect(view.lines[2].body == "«Claude\\nWants to: see the app's contents⟨U+2028⟩App: Calcula…» (its own words, not checked)")
        #expect(view.lines[3].body == "Type 11 characters into the field «Name» of «gedit» (/usr/bin/gedit)")
        #expect(view.lines[4].body == "write: types into or changes the app  [field.fill]")
        #expect(view.choices == ["deny", "allow_once", "allow_session"])
        #expect(PromptView(Self.request(["kind": "request"])).lines == view.lines)
        // The terminal shows one line per line, headings aligned.
        #expect(view.terminalLines.count == 5)
        #expect(view.terminalLines[3].hasPrefix("Wants to     : Type 11"))
    }

    @Test("zenity's text: headings in bold, every backslash doubled and markup escaped, one line per line")
    func markup() {
        let view = PromptView(Self.request(["client": ["uid": 1, "pid": 2, "exe": "/usr/bin/python3",
                                                       "label": "<span size=\"100000\">big</span>\\n\\342\\200\\250&amp;"]]))
        let lines = view.markupText.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == view.lines.count + 2)
        #expect(lines[0] == "<b>Program:</b> /usr/bin/python3  (pid 2, uid 1)")
        #expect(lines[1] == "<b>Calls itself:</b> «&lt;span size=&quot;100000&quot;&gt;big&lt;/span&gt;\\\\n\\\\342\\\\200\\\\250&amp;amp;» (its own words, not checked)")
        #expect(lines.last == "<small>\(PromptView.legend)</small>")
    }

    @Test("without a preview (an older daemon), the sentence is built from the method and target")
    func fallbackSentence() {
        var params = Self.request().objectValue!
        params["preview"] = nil
        params["target"] = ["app": "Calc\u{2029}X", "app_exe": "/usr/bin/gnome-calculator", "role": "push button", "name": "="]
        let view = PromptView(.object(params))
        #expect(view.lines[3].body == "type text (field.fill) on the button «=» of «Calc⟨U+2029⟩X» (/usr/bin/gnome-calculator)")
    }

    @Test("a task: its title fenced, each scope entry in plain words, the expiry and the limits")
    func task() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let view = PromptView(["kind": "task", "prompt_id": "t1", "client": Self.client, "timeout_s": 60,
                               "title": "Book the flight\u{2028}Risk: none", "expires_at": .int(1_800_000_000 + 30 * 60), "max_actions": 20,
                               "scope": [
                                   ["actions": ["act", "write"], "app_exe": "/usr/lib/firefox/firefox", "app": "Firefox",
                                    "role": "push button", "name": "Book", "origin": "https://air.example", "max": 2],
                                   ["actions": ["element.activate", "teleport"], "app_exe": "/usr/bin/gedit"],
                               ],
                               "choices": ["deny", "approve_task"]], now: now)
        #expect(view.kind == .task)
        #expect(view.title == "deskgate: task approval")
        let body = Dictionary(view.lines.map { ($0.heading, $0.body) }, uniquingKeysWith: { a, _ in a })
        #expect(body["Task"] == "«Book the flight⟨U+2028⟩Risk: none» (its own words)")
        #expect(body["Scope 1"] == "click, focus or choose, type or change values in «Firefox» (/usr/lib/firefox/firefox), only the button «Book», only on web pages of «https://air.example», at most 2 times")
        #expect(body["Scope 2"] == "press or click, «teleport» in the app run from /usr/bin/gedit")
        let limits = try #require(body["Limits"])
        #expect(limits.hasSuffix("(in 30 min), at most 20 actions in all"), "\(limits)")
        #expect(view.choices == ["deny", "approve_task"])
        #expect(PromptChoice.label("approve_task").hasPrefix("Approve the task — "))
        // An RFC 3339 expiry reads the same.
        let rfc = PromptView(["kind": "task", "expires_at": "2027-03-01T08:30:00Z", "scope": [], "choices": ["deny"]],
                             now: Date(timeIntervalSince1970: 1_800_000_000)).lines.first { $0.heading == "Limits" }?.body
        #expect(rfc?.hasPrefix("until 2027-03-01 ") == true, "\(rfc ?? "nil")")
        #expect(rfc?.contains("no limit on the number of actions given") == true)
        // A huge scope is counted, never silently cut.
        let many = PromptView(["kind": "task", "scope": .array(Array(repeating: ["actions": ["read"], "app_exe": "/bin/x"], count: 40)), "choices": ["deny"]])
        #expect(many.lines.filter { $0.heading.hasPrefix("Scope") }.count == PromptView.maxScopeLines + 1)
        #expect(many.lines.contains { $0.body.hasPrefix("and 28 more entries") })
    }

    @Test("resume, unknown kinds and unknown choices are shown, never dropped")
    func resumeAndUnknown() {
        let resume = PromptView(["kind": "resume", "client": Self.client, "title": "Book the flight", "reason": "the app changed",
                                 "choices": ["deny", "resume", "resume_forever\u{1B}[2J"]])
        #expect(resume.kind == .resume)
        #expect(resume.lines.contains(.init(heading: "Wants to", body: "go on with its paused task «Book the flight» (its own words)")))
        #expect(resume.lines.contains(.init(heading: "Paused", body: "the app changed")))
        #expect(resume.choices == ["deny", "resume", "resume_forever\u{1B}[2J"])
        #expect(PromptChoice.label("resume_forever\u{1B}[2J") == "«resume_forever⟨U+001B⟩[2J» — a choice this helper does not know; deskgate offered it")
        #expect(PromptChoice.key("resume_forever", at: 2) == "3")
        let other = PromptView(Self.request(["kind": "ritual\u{202E}", "choices": ["allow_once"]]))
        #expect(other.kind == .other("ritual⟨U+202E⟩"))
        #expect(other.lines.contains { $0.heading == "Kind" && $0.body.hasPrefix("«ritual⟨U+202E⟩» (unknown") })
        #expect(other.lines.contains { $0.heading == "Wants to" })
        // Deny is always there: closing the dialog denies.
        #expect(other.choices == ["deny", "allow_once"])
    }

    @Test("long bodies go on in indented lines, so no text of a program starts a line like a heading")
    func wrapping() {
        let padded = String(repeating: "x", count: 58) + " Wants to: read text"
        let view = PromptView(Self.request(["preview": .string("Press the button «" + String(repeating: "y ", count: 60) + "Risk: none»")]))
        let terminal = view.terminalLines
        #expect(terminal.filter { $0.hasPrefix("Risk") }.count == 1, "\(terminal)")
        #expect(terminal.allSatisfy { $0.count <= PromptView.lineWidth + 16 })
        #expect(terminal.contains { $0.hasPrefix("               ") && $0.contains("Risk: none»") }, "\(terminal)")
        let markup = view.markupText.split(separator: "\n")
        #expect(markup.filter { $0.hasPrefix("<b>Risk:</b>") }.count == 1)
        #expect(markup.contains { $0.hasPrefix("        ") && $0.contains("Risk: none»") }, "\(markup)")
        #expect(PromptView.wrap(padded, width: 60) == [String(repeating: "x", count: 58), "Wants to: read text"])
        #expect(PromptView.wrap(String(repeating: "z", count: 130), width: 60).map(\.count) == [60, 60, 10])
    }
}
