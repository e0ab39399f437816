#if canImport(Glibc)
import Glibc
#endif
import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

/// The vocabulary an agent needs, in the real browsers the harness started once: choosing an
/// option, loading a URL, waiting for a page, rules by web origin, results that wait for the
/// page, and edits the browser ignores reported as such.
struct AgentFlows {
    let kind: String
    var app: String { RealApps.appName(kind) }
    var flows: BrowserFlows { BrowserFlows(kind: kind) }

    /// A page of the test's own, open in a tab of the running browser, seen through a daemon of
    /// its own with `policy`.
    struct Page {
        let daemon: DaemonProcess
        let client: DeskgateClient
        let page: WebPage
        let document: String
        let window: String
        var view: AppView
    }

    /// Opens `page` (by the harness, or by `browser.navigate` when `navigate`), runs `body`, and
    /// closes the tabs showing `page` (and `alsoClose`) whatever happened.
    func with(_ page: WebPage, policy: String = RealApps.policy, alsoClose: [String] = [],
              _ body: (inout Page) async throws -> Void) async throws {
        try RealApps.require(kind)
        let daemon = try DaemonProcess(userPolicy: policy)
        try RealApps.open(kind, page.url)
        let client = try await daemon.client()
        let document = try await client.waitForElement(app: app, role: "document web", name: page.title)
        let window = try await client.waitForWindow(app: app, prefix: page.title)
        var view = AppView(client, app: app, root: window, within: document)
        try await view.refresh()
        var session = Page(daemon: daemon, client: client, page: page, document: document, window: window, view: view)
        do {
            try await body(&session)
        } catch {
            await close(session, titles: [page.title] + alsoClose)
            throw error
        }
        await close(session, titles: [page.title] + alsoClose)
    }

    func close(_ session: Page, titles: [String]) async {
        await flows.closeTabs(client: session.client, window: session.window, titles: titles)
        session.client.closeNow()
        session.daemon.stop()
        try? FileManager.default.removeItem(atPath: session.page.path)
    }

    /// A page with a select that says what was chosen, a check box, a button far below the
    /// fold, and a text input.
    static func choosePage(id: String) throws -> WebPage {
        try WebPage(name: "choose", title: "Choose", id: id, body: """
            <h1>Choose</h1>
            <p><label for="color">Color</label> <select id="color" onchange="document.getElementById('said').textContent = 'Chose ' + this.value"><option>Red</option><option>Green</option><option>Blue</option></select></p>
            <p><label><input type="checkbox" id="agree"> I agree</label></p>
            <p><label for="note">Note</label> <input id="note" type="text"></p>
            <p id="said">Chose nothing</p>
            <div style="height: 4000px"></div>
            <p><button type="button" onclick="document.getElementById('said').textContent = 'Far pressed'">Far below</button></p>
            """)
    }

    // MARK: - Tasks

    /// `element.select` by name and by index: the page's onchange sees each choice.
    func selectTask() async throws {
        let id = RealApps.uniqueID()
        try await with(try Self.choosePage(id: id)) { session in
            let client = session.client
            let color = try session.view.ref("combo box", "Color")
            let blue = try await client.call("element.select", ["ref": .string(color), "option_name": "Blue"])
            #expect(blue["ok"] == true, "\(blue)")
            #expect(blue["option"] == "Blue" && blue["index"] == 2)
            // As a person chooses: Firefox through the popup the select opens in its window,
            // Chromium by the option's own action (its lists refuse Selection.SelectChild).
            #expect(blue["method"] == .string(kind == "firefox" ? "popup" : "action"), "\(blue)")
            #expect(await Flows.eventually {
                try? await session.view.refresh(include: ["text"])
                return session.view.mentions("Chose Blue")
            }, "the page never saw Blue chosen")
            let green = try await client.call("element.select", ["ref": .string(color), "index": 1])
            #expect(green["ok"] == true && green["option"] == "Green", "\(green)")
            #expect(await Flows.eventually {
                try? await session.view.refresh(include: ["text"])
                return session.view.mentions("Chose Green")
            }, "the page never saw Green chosen")
            // The option asked for is in the audit log, with the combo box decided on.
            let decision = Flows.records(session.daemon, method: "element.select").first?.decision
            #expect(decision?["target"]?["params"] == ["option_name": "Blue"])
            #expect(decision?["target"]?["role"] == "combo box")
        }
    }

    /// A check box's activation reports `checked` in its reply: the daemon waited for it.
    func settledCheckBox() async throws {
        let id = RealApps.uniqueID()
        try await with(try Self.choosePage(id: id)) { session in
            let agree = try session.view.ref("check box", "I agree")
            // The first query already has the action (Firefox fills its cache late: the daemon
            // asks by index).
            let actions = try await session.client.call("element.get", ["ref": .string(agree)])["actions"]?.arrayValue ?? []
            #expect(!actions.isEmpty && actions.allSatisfy { !($0.stringValue ?? "").isEmpty }, "actions: \(actions)")
            let result = try await session.client.call("element.activate", ["ref": .string(agree)])
            #expect(result["states"]?.arrayValue?.contains("checked") == true, "\(result)")
            #expect(result["settled"] == true)
        }
    }

    /// Scrolling a button far below the fold into view, then pressing it.
    func scrollTask() async throws {
        let id = RealApps.uniqueID()
        try await with(try Self.choosePage(id: id)) { session in
            let far = try session.view.ref("push button", "Far below")
            let scrolled = try await session.client.call("element.scroll_into_view", ["ref": .string(far)])
            #expect(scrolled["ok"] == true && scrolled["in_view"] == true, "\(scrolled)")
            // On screen, read back as a client would: the button's bounds are inside the page's.
            let page = try #require(try await session.client.call("element.get", ["ref": .string(session.document)])["bounds"])
            let button = try #require(try await session.client.call("element.get", ["ref": .string(far)])["bounds"], "no bounds for the button")
            let (top, bottom) = (page["y"]?.intValue ?? 0, (page["y"]?.intValue ?? 0) + (page["height"]?.intValue ?? 0))
            let y = button["y"]?.intValue ?? -1
            #expect(y >= top && y < bottom, "button at y \(y), page from \(top) to \(bottom)")
            _ = try await session.client.call("element.activate", ["ref": .string(far)])
            #expect(await Flows.eventually {
                try? await session.view.refresh(include: ["text"])
                return session.view.mentions("Far pressed")
            })
        }
    }

    /// `browser.navigate` opens a page in a new tab; `elements.wait` sees it arrive; the URL is
    /// in the audit log; a file: URL is refused.
    func navigateTask() async throws {
        let id = RealApps.uniqueID()
        let target = try WebPage(name: "arrive", title: "Arrived", id: id, body: "<h1>Navigated \(id)</h1>")
        defer { try? FileManager.default.removeItem(atPath: target.path) }
        try await with(try Self.choosePage(id: id), alsoClose: [target.title]) { session in
            let client = session.client
            let loaded = try await client.call("browser.navigate", ["app": .string(app), "url": .string(target.url)])
            #expect(loaded["ok"] == true)
            #expect(loaded["origin"]?.stringValue == WebOriginOf(RealApps.webURL))
            let waited = try await client.call("elements.wait", ["app": .string(app), "role": "document web",
                                                                 "name": .string(target.title), "timeout_ms": 30_000])
            #expect(waited["found"] == true, "\(waited)")
            let decision = Flows.records(session.daemon, method: "browser.navigate").first?.decision
            #expect(decision?["target"]?["params"] == ["url": .string(target.url)])
            let file = await Flows.failure(client, "browser.navigate", ["app": .string(app), "url": "file:///etc/passwd"])
            #expect(file?.code == .invalidParams)
            // A timeout is an answer, not an error.
            let never = try await client.call("elements.wait", ["app": .string(app), "name": .string("No such element \(id)"),
                                                                "timeout_ms": 200])
            #expect(never["found"] == false)
        }
    }

    /// Rules by origin: the page's origin is read from the page itself; a deny on it holds, an
    /// allow for another origin does not reach it; the audit records the origin.
    func originTask() async throws {
        let id = RealApps.uniqueID()
        let origin = WebOriginOf(RealApps.webURL) ?? "?"
        let policy = """
            default = "deny"
            [[rule]]
            id = "look"
            effect = "allow"
            actions = ["observe", "read"]
            app = "\(app)"
            [[rule]]
            id = "act-elsewhere"
            effect = "allow"
            actions = ["act"]
            app = "\(app)"
            origin = "https://elsewhere.example"
            [[rule]]
            id = "no-local-writes"
            effect = "deny"
            actions = ["write"]
            origin = "http://127.0.0.1:*"
            [[rule]]
            id = "write-anywhere"
            effect = "allow"
            actions = ["write"]
            app = "\(app)"
            """
        try await with(try Self.choosePage(id: id), policy: policy) { session in
            let client = session.client
            let agree = try session.view.ref("check box", "I agree")
            let act = await Flows.failure(client, "element.activate", ["ref": .string(agree)])
            #expect(act?.code == .denied, "the allow for another origin reached this page")
            #expect(act?.data?["rule"] == nil || act?.data?["rule"] == .null)
            let write = await Flows.failure(client, "text.set", ["ref": .string(try session.view.ref("entry", "Note")), "value": "x"])
            #expect(write?.code == .denied)
            #expect(write?.data?["rule"] == "no-local-writes", "\(String(describing: write))")
            let checked = try await client.call("broker.check", ["method": "element.activate", "params": ["ref": .string(agree)]])
            #expect(checked["effect"] == "deny")
            let decision = Flows.records(session.daemon, method: "element.activate").first?.decision
            #expect(decision?["target"]?["origin"] == .string(origin), "\(String(describing: decision))")
        }
    }

    /// A snapshot rooted at the page's document holds the page, as one rooted at the window
    /// does below the document.
    func documentSnapshotTask() async throws {
        let id = RealApps.uniqueID()
        try await with(try Self.choosePage(id: id)) { session in
            let rooted = try await session.client.call("tree.snapshot", ["app": .string(app), "root": .string(session.document)])
            let nodes = rooted["nodes"]?.arrayValue ?? []
            let seen = Set(nodes.compactMap { node -> String? in
                guard let role = node["role"]?.stringValue, let name = node["name"]?.stringValue else { return nil }
                return "\(role) \(name)"
            })
            for control in ["combo box Color", "check box I agree", "entry Note", "push button Far below"] {
                #expect(seen.contains(control), "\(control) missing from the snapshot rooted at the document (\(nodes.count) nodes, \(rooted["stats"] ?? .null))")
            }
            // The same page as the window's snapshot shows below the document.
            #expect(nodes.count == session.view.nodes.count, "document snapshot \(nodes.count) nodes, window's subtree \(session.view.nodes.count)")
        }
    }

    /// Origin rules hold for text events too: a deny of `read` on this page's origin keeps the
    /// page's text changes out of an allowed event stream, while a daemon allowed everything (the
    /// control) sees them. Firefox only: Chromium announces a page's new text as a new text
    /// node (children and name events), not as a text change.
    func originTextEventsTask() async throws {
        let id = RealApps.uniqueID()
        let said = "Said \(id)"
        let page = try WebPage(name: "say", title: "Say", id: id, body: """
            <h1>Say</h1>
            <p id="said">Nothing said</p>
            <p><button type="button" onclick="document.getElementById('said').textContent = '\(said)'">Say it</button></p>
            """)
        let gated = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            id = "look"
            effect = "allow"
            actions = ["observe", "read"]
            app = "\(app)"
            [[rule]]
            id = "no-local-reads"
            effect = "deny"
            actions = ["read"]
            origin = "http://127.0.0.1:*"
            """)
        defer { gated.stop() }
        try await with(page) { session in
            let gatedClient = try await gated.client()
            defer { gatedClient.closeNow() }
            let gatedEvents = EventLog(gatedClient)
            _ = try await gatedClient.call("events.subscribe", ["events": ["text"]])
            let controlEvents = EventLog(session.client)
            _ = try await session.client.call("events.subscribe", ["events": ["text"]])
            let button = try session.view.ref("push button", "Say it")
            // Firefox may need a moment before the button has its action.
            _ = await Flows.eventually { (try? await session.client.call("element.activate", ["ref": .string(button)])) != nil }
            let mentions = { (event: JSONValue) -> Bool in (event["detail"]?["text"]?.stringValue ?? "").contains(id) }
            #expect(await Flows.eventually { controlEvents.contains(mentions) }, "the control never saw the page's text change")
            try await Task.sleep(for: .milliseconds(300))
            #expect(!gatedEvents.contains(mentions), "the page's text reached a stream whose read of its origin is denied")
        }
    }
}

/// `scheme://host[:port]` of a URL, as the daemon computes it (for the served pages' URLs).
func WebOriginOf(_ url: String) -> String? {
    guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return nil }
    return components.port.map { "\(scheme)://\(host):\($0)" } ?? "\(scheme)://\(host)"
}

@Suite("Real apps: an agent's vocabulary in Firefox", .serialized, .enabled(if: RealApps.enabled("firefox"), "needs scripts/headless-desktop.sh --app firefox"))
struct RealAppsFirefoxAgentTests {
    let flows = AgentFlows(kind: "firefox")

    @Test("element.select chooses an option of a <select> by name and by index; the page sees it; the audit has the option")
    func select() async throws { try await flows.selectTask() }

    @Test("a check box's activation reply shows it checked (settled); its action is there on the first query")
    func settled() async throws { try await flows.settledCheckBox() }

    @Test("element.scroll_into_view brings a button far below the fold on screen")
    func scroll() async throws { try await flows.scrollTask() }

    @Test("browser.navigate opens a page in a new tab, elements.wait sees it arrive; file: URLs are refused")
    func navigate() async throws { try await flows.navigateTask() }

    @Test("origin rules: a deny on this page's origin holds, an allow for another origin does not reach it")
    func origin() async throws { try await flows.originTask() }

    @Test("a snapshot rooted at the page's document holds the page")
    func documentSnapshot() async throws { try await flows.documentSnapshotTask() }

    @Test("origin rules hold for text events: a deny of read on the page's origin keeps its text changes out of the stream")
    func originTextEvents() async throws { try await flows.originTextEventsTask() }

    @Test("text.set and text.insert into a web input: Firefox answers and keeps nothing, and the daemon says so")
    func ignoredEdits() async throws {
        let id = RealApps.uniqueID()
        try await flows.with(try AgentFlows.choosePage(id: id)) { session in
            let note = try session.view.ref("entry", "Note")
            for (method, params) in [("text.set", ["ref": JSONValue.string(note), "value": "typed"]),
                                     ("text.insert", ["ref": JSONValue.string(note), "value": "typed"])] {
                let error = await Flows.failure(session.client, method, .object(JSONObject(params.map { ($0.key, $0.value) })))
                #expect(error?.code == .notSupported, "\(method): \(String(describing: error))")
                #expect(error?.data?["reason"] == "ignored_by_app", "\(method): \(String(describing: error))")
            }
        }
    }
}

@Suite("Real apps: an agent's vocabulary in Chromium", .serialized, .enabled(if: RealApps.enabled("chromium"), "needs scripts/headless-desktop.sh --app chromium"))
struct RealAppsChromiumAgentTests {
    let flows = AgentFlows(kind: "chromium")

    @Test("element.select chooses an option of a <select> by name and by index; the page sees it; the audit has the option")
    func select() async throws { try await flows.selectTask() }

    @Test("a check box's activation reply shows it checked (settled); its action has a name")
    func settled() async throws { try await flows.settledCheckBox() }

    @Test("element.scroll_into_view brings a button far below the fold on screen")
    func scroll() async throws { try await flows.scrollTask() }

    @Test("browser.navigate opens a page in a new tab, elements.wait sees it arrive; file: URLs are refused")
    func navigate() async throws { try await flows.navigateTask() }

    @Test("origin rules: a deny on this page's origin holds, an allow for another origin does not reach it")
    func origin() async throws { try await flows.originTask() }

    @Test("a snapshot rooted at the page's document holds the page")
    func documentSnapshot() async throws { try await flows.documentSnapshotTask() }

    @Test("deskgate doctor on a Chromium started without --force-renderer-accessibility advises the switch")
    func doctorAdvises() async throws {
        try RealApps.require("chromium")
        let profile = TempDirectory("deskgate-bare-chromium")
        defer { profile.remove() }
        let bare = Process()
        // Accessibility on, as on a desktop where it is (Chromium reads it once, at start), and
        // no --force-renderer-accessibility.
        bare.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        bare.arguments = ["GNOME_ACCESSIBILITY=1", "/usr/bin/chromium", "--no-sandbox", "--user-data-dir=\(profile.path)", "--no-first-run", "--disable-gpu",
                          "--password-store=basic", "about:blank"]
        bare.standardOutput = FileHandle.nullDevice
        bare.standardError = FileHandle.nullDevice
        try bare.run()
        defer {
            kill(-bare.processIdentifier, SIGTERM)
            bare.terminate()
            bare.waitUntilExit()
        }
        let daemon = try DaemonProcess(userPolicy: RealApps.policy)
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        var finding: JSONValue?
        // Chromium registers on the bus a moment after it starts.
        #expect(await Flows.eventually(timeout: 30) {
            let doctor = try? await client.call("daemon.doctor")
            finding = doctor?["findings"]?.arrayValue?.first { $0["check"] == "app_tree" && $0["status"] == "warning" && $0["app"] != nil
                && (($0["advice"]?.stringValue ?? "").contains("--force-renderer-accessibility")) }
            return finding != nil
        }, "no advice about the switch for the bare Chromium")
        // The Chromium the harness started with the switch gets no such advice. (Other apps may
        // warn meanwhile: a LibreOffice still loading its document once showed an empty window.)
        let doctor = try await client.call("daemon.doctor")
        let warned = doctor["findings"]?.arrayValue?.filter {
            $0["check"] == "app_tree" && $0["status"] == "warning"
                && ($0["advice"]?.stringValue ?? "").contains("--force-renderer-accessibility")
        } ?? []
        #expect(warned.count == 1, "\(warned)")
        #expect(warned.first?["pid"] == finding?["pid"])
        // The CLI says it to a person.
        let cli = try CLI.run(["doctor", "--socket", daemon.socketPath])
        #expect(cli.stdout.contains("--force-renderer-accessibility"), "\(cli.stdout)")
    }
}

@Suite("Real apps: an agent's vocabulary in Writer", .serialized, .enabled(if: RealApps.enabled("writer"), "needs scripts/headless-desktop.sh --app writer"))
struct RealAppsWriterAgentTests {
    @Test("text.insert adds to a paragraph at an offset; Bold's activation reply shows it pressed (settled)")
    func insertAndBold() async throws {
        let id = RealApps.uniqueID()
        let first = "Paragraph \(id)."
        var session = try await OfficeSession.open("writer", file: "insert-\(id).fodt") { path in
            try OfficeDocument.writer(at: path, heading: "Insert \(id)", paragraphs: [first, "Another."])
        }
        defer { session.finish() }
        let client = session.client
        let paragraph = try #require(session.view.all("paragraph").first { $0["text"]?.stringValue == first }?["ref"]?.stringValue)
        let inserted = try await client.call("text.insert", ["ref": .string(paragraph), "value": "Dear reader: ", "at": 0])
        #expect(inserted["matches"] == true, "\(inserted)")
        #expect(try await client.call("text.read", ["ref": .string(paragraph)])["text"] == .string("Dear reader: " + first))
        try await session.view.refresh()
        let bold = try session.view.ref("toggle button", "Bold")
        let on = try await client.call("element.activate", ["ref": .string(bold)])
        #expect(on["action"]?.stringValue?.isEmpty == false, "\(on)")
        #expect(on["settled"] == true, "\(on)")
        let pressed = (on["states"]?.arrayValue ?? []).contains { $0 == "checked" || $0 == "pressed" }
        #expect(pressed, "Bold's reply does not show it pressed: \(on)")
        let off = try await client.call("element.activate", ["ref": .string(bold)])
        #expect(off["settled"] == true, "\(off)")
    }
}
