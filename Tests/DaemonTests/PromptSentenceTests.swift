import ATSPI
@testable import Daemon
import DeskgateAPI
import JSONRPC
import Testing

@Suite("Prompt sentences: what, where, how much, in plain words")
struct PromptSentenceTests {
    static let gtk3 = AppTarget(id: ":1.42", name: "deskgate-fixture-gtk3", pid: 4242, exe: "/usr/bin/python3.11", startTime: 1)

    static func target(role: String, name: String, label: String? = nil, origin: String? = nil,
                       app: AppTarget = gtk3) -> ResolvedTarget {
        ResolvedTarget(app: app, element: ElementTarget(ref: "e1", role: role, name: name, label: label, origin: origin))
    }

    static func sentence(_ method: String, _ riskClass: RiskClass, _ target: ResolvedTarget?, _ params: JSONObject = [:]) -> String {
        PromptSentence.make(method: method, riskClass: riskClass, target: target, params: params)
    }

    @Test("each method family reads as one sentence naming the element and the app with its executable")
    func families() {
        let field = Self.target(role: "text", name: "", label: "Name")
        #expect(Self.sentence("field.fill", .write, field, ["app": "x", "field": "Name", "value": "hello world"])
                == "Type 11 characters into the field «Name» of «deskgate-fixture-gtk3» (/usr/bin/python3.11)")
        #expect(Self.sentence("text.set", .write, field, ["ref": "e1", "value": "x"])
                == "Replace the text of the field «Name» with 1 character of «deskgate-fixture-gtk3» (/usr/bin/python3.11)")
        #expect(Self.sentence("text.insert", .write, field, ["ref": "e1", "value": "abc", "at": 2])
                .hasPrefix("Insert 3 characters into the field «Name» at position 2 of «deskgate-fixture-gtk3»"))
        let button = Self.target(role: "push button", name: "Submit")
        #expect(Self.sentence("element.activate", .act, button, ["ref": "e1"])
                == "Press the button «Submit» of «deskgate-fixture-gtk3» (/usr/bin/python3.11)")
        #expect(Self.sentence("element.activate", .act, Self.target(role: "check box", name: "Subscribe"), ["ref": "e1", "action": "toggle"])
                .hasPrefix("Toggle the check box «Subscribe» (its action «toggle») of"))
        #expect(Self.sentence("element.activate", .act, Self.target(role: "link", name: "Docs"), ["ref": "e1"]).hasPrefix("Follow the link «Docs»"))
        #expect(Self.sentence("element.focus", .act, button, ["ref": "e1"]).hasPrefix("Move the keyboard focus to the button «Submit» of"))
        #expect(Self.sentence("element.scroll_into_view", .act, button, ["ref": "e1"]).hasPrefix("Scroll the button «Submit» into view of"))
        let combo = Self.target(role: "combo box", name: "Country")
        #expect(Self.sentence("element.select", .act, combo, ["ref": "e1", "option_name": "Norway"]).hasPrefix("Choose «Norway» in the combo box «Country» of"))
        #expect(Self.sentence("element.select", .act, combo, ["ref": "e1", "index": 2]).hasPrefix("Choose option number 3 in the combo box «Country» of"))
        #expect(Self.sentence("value.set", .write, Self.target(role: "slider", name: "Volume"), ["ref": "e1", "value": 7])
                .hasPrefix("Set the slider «Volume» to 7 of"))
        #expect(Self.sentence("text.read", .read, Self.target(role: "text", name: "Notes"), ["ref": "e1"]).hasPrefix("Read the text of the field «Notes» of"))
        #expect(Self.sentence("tree.snapshot", .observe, ResolvedTarget(app: Self.gtk3), ["app": "x"])
                == "See everything on screen in «deskgate-fixture-gtk3» (/usr/bin/python3.11)")
        #expect(Self.sentence("elements.find", .observe, ResolvedTarget(app: Self.gtk3), ["app": "x", "role": "push button", "name": "OK"])
                == "Look for elements on screen of role «push button», named «OK» in «deskgate-fixture-gtk3» (/usr/bin/python3.11)")
        #expect(Self.sentence("browser.navigate", .write, ResolvedTarget(app: AppTarget(id: ":1.9", name: "Firefox", pid: 9, exe: "/usr/lib/firefox/firefox", startTime: 1)),
                              ["app": "Firefox", "url": "https://example.com/a"])
                == "Open the web page «https://example.com/a» in a new tab in «Firefox» (/usr/lib/firefox/firefox)")
        #expect(Self.sentence("audit.query", .admin, nil, [:]) == "Read deskgate's audit log (which programs did what, and when)")
        #expect(Self.sentence("grants.list", .admin, nil, [:]) == "Read your deskgate rules and remembered grants")
        // A web page's origin, read from the document, is said after the app.
        #expect(Self.sentence("element.activate", .act, Self.target(role: "push button", name: "Pay", origin: "https://bank.example"), ["ref": "e1"])
                .hasSuffix("(/usr/bin/python3.11), on the web page of https://bank.example"))
        // A keyring fill names the item (fenced: any program of the user could have stored it) and the password field.
        var login = Self.target(role: "password text", name: "", label: "Password", origin: "https://bank.example")
        login.secretItem = SecretItemTarget(label: "Bank login", path: "/org/freedesktop/secrets/collection/login/1")
        #expect(Self.sentence("field.fill_secret", .secret, login, ["app": "x", "field": "Password", "secret": ["label": "Bank login"]])
                == "Fill the password «Bank login» from your keyring into the password field «Password» (the program never sees it) of «deskgate-fixture-gtk3» (/usr/bin/python3.11), on the web page of https://bank.example")
        // A method this builder has no words for still says what it is and where.
        #expect(Self.sentence("debug.sleep", .observe, nil, ["ms": 1]) == "See what is on screen (debug.sleep)")
    }

    @Test("a typed value is never in the sentence, only its length; nor a password field's content")
    func neverTheValue() {
        let secret = "hunter2-\(UInt32.random(in: 0...UInt32.max))"
        let password = Self.target(role: "password text", name: "", label: "Password")
        let sentence = Self.sentence("field.fill", .write, password, ["app": "x", "field": "Password", "value": .string(secret)])
        #expect(!sentence.contains(secret))
        #expect(sentence.hasPrefix("Type \(secret.count) characters into the password field «Password» of"))
        let plain = Self.sentence("text.insert", .write, Self.target(role: "text", name: "Notes"), ["ref": "e1", "value": .string(secret)])
        #expect(!plain.contains(secret) && !plain.contains("hunter2"))
        // Characters as a person counts them: one emoji with a skin tone is one.
        #expect(Self.sentence("text.set", .write, Self.target(role: "text", name: "N"), ["ref": "e1", "value": "👍🏽é"]).contains("with 2 characters"))
    }

    @Test("hostile names stay fenced, on one line, bounded, and cannot close their fence")
    func hostileNames() {
        let hostileApp = AppTarget(id: ":1.7", name: "Calc\u{2028}Wants to: read text\nApp: «Calculator»" + String(repeating: "A", count: 100_000),
                                   pid: 7, exe: "/usr/bin/python3", startTime: 1)
        let element = ElementTarget(ref: "e1", role: "push button\u{202E}", name: "OK\\n<b>» (its own words)</b>\u{85}")
        let sentence = Self.sentence("element.activate", .act, ResolvedTarget(app: hostileApp, element: element), ["ref": "e1"])
        #expect(!sentence.unicodeScalars.contains { $0.properties.generalCategory == .control || $0.value == 0x2028 || $0.value == 0x202E })
        #expect(sentence.count < 400, "\(sentence.count)")
        #expect(sentence.contains("«OK\\n<b>⟨U+00BB⟩ (its own words)</b>⟨U+0085⟩»"), "\(sentence)")
        #expect(sentence.contains("«Calc⟨U+2028⟩Wants to: read text⟨U+000A⟩App: ⟨U+00AB⟩Calculator⟨U+00BB⟩AA"), "\(sentence)")
        // Exactly two fences opened and closed: the element's and the app's.
        #expect(sentence.filter { $0 == "«" }.count == 2 && sentence.filter { $0 == "»" }.count == 2, "\(sentence)")
        #expect(sentence.hasSuffix("…» (/usr/bin/python3)"), "\(sentence)")
    }
}
