#if canImport(Glibc)
import Glibc
#endif
import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

/// What an agent does in a web page, in a real browser the harness started once
/// (`scripts/headless-desktop.sh --app firefox --app chromium`), through a daemon of the test's own
/// over its socket. Each test opens a page of its own in a new tab and closes the tab at the end.
/// Neither browser lets text be set through AT-SPI (docs/apps.md): the form task is done without
/// typing, and the refusal itself is tested.
struct BrowserFlows {
    let kind: String
    var app: String { RealApps.appName(kind) }

    /// A daemon, a client, and the test's form page open in the browser.
    struct Session {
        let daemon: DaemonProcess
        let client: DeskgateClient
        let form: WebPage
        let next: WebPage
        let document: String
        let window: String
        var view: AppView
    }

    func openForm(password: String = "pw-\(RealApps.uniqueID())") async throws -> Session {
        try RealApps.require(kind)
        let id = RealApps.uniqueID()
        let (form, next) = try WebPage.form(id: id, password: password)
        let daemon = try DaemonProcess(userPolicy: RealApps.policy)
        try RealApps.open(kind, form.url)
        let client = try await daemon.client()
        let document = try await client.waitForElement(app: app, role: "document web", name: form.title)
        let window = try await client.waitForWindow(app: app, prefix: form.title)
        var view = AppView(client, app: app, root: window, within: document)
        try await view.refresh()
        return Session(daemon: daemon, client: client, form: form, next: next, document: document, window: window, view: view)
    }

    /// Closes the tabs showing one of `titles` (``closeTabs(client:window:titles:)``), then the
    /// session's daemon and its pages.
    func closeTab(_ session: Session, titles: [String]) async {
        await closeTabs(client: session.client, window: session.window, titles: titles)
        session.client.closeNow()
        session.daemon.stop()
        try? FileManager.default.removeItem(atPath: session.form.path)
        try? FileManager.default.removeItem(atPath: session.next.path)
    }

    /// Closes the tabs showing one of `titles`, as an agent would: each page tab's close button.
    func closeTabs(client: DeskgateClient, window: String, titles: [String]) async {
        for title in titles {
            // By substring: Chromium's tab names grow a " - Memory usage - 23.0 MB" after a while.
            guard let found = try? await client.call("elements.find", ["app": .string(app), "role": "page tab", "name_contains": .string(title)]),
                  let tab = found["nodes"]?.arrayValue?.first?["ref"]?.stringValue else { continue }
            var strip = AppView(client, app: app, root: window, within: tab)
            try? await strip.refresh()
            // Firefox calls it "Close tab", Chromium "Close".
            if let close = strip.all("push button").first(where: { ($0["name"]?.stringValue ?? "").hasPrefix("Close") })?["ref"]?.stringValue {
                _ = try? await client.call("element.activate", ["ref": .string(close)])
            }
        }
    }

    /// Runs `body` on a fresh form page, closing its tab afterwards whatever happened.
    func withForm(password: String = "pw-\(RealApps.uniqueID())", _ body: (inout Session) async throws -> Void) async throws {
        var session = try await openForm(password: password)
        do {
            try await body(&session)
        } catch {
            await closeTab(session, titles: [session.form.title, session.next.title])
            throw error
        }
        await closeTab(session, titles: [session.form.title, session.next.title])
    }

    /// Activates `ref` once the element reports an action. Firefox reports none for a moment
    /// after a page loads (its cache of the content process fills in later; docs/apps.md).
    func activate(_ client: DeskgateClient, _ ref: String) async throws -> JSONValue {
        _ = await Flows.eventually {
            let actions = try? await client.call("element.get", ["ref": .string(ref)])["actions"]?.arrayValue
            return !(actions ?? []).isEmpty
        }
        return try await client.call("element.activate", ["ref": .string(ref)])
    }

    // MARK: - The tasks

    /// Read the form by label, check the box, set the slider, submit, see the page change.
    func formTask() async throws {
        try await withForm { session in
            let client = session.client
            var view = session.view
            // The form as an agent reads it: every control named by its label, in the snapshot
            // and in the outline.
            for (role, name) in [("entry", "Full name"), ("entry", "Email"), ("password text", "Password"),
                                 ("combo box", "Color"), ("slider", "Volume"), ("check box", "I agree"),
                                 ("check box", "Newsletter"), ("push button", "Send"), ("link", "Next page")] {
                #expect(view.all(role, name).count == 1, "\(role) \"\(name)\" in \(kind)'s form")
            }
            let outline = try await client.call("tree.snapshot", ["app": .string(app), "root": .string(session.window),
                                                                  "format": "outline", "filter": "interactive"])
            let lines = outline["outline"]?.stringValue ?? ""
            for line in [#"entry "Full name""#, #"password text "Password""#, #"check box "I agree""#, #"push button "Send""#] {
                #expect(lines.contains(line), "outline lacks \(line): \(lines)")
            }
            #expect(try await client.states(try view.ref("check box", "Newsletter")).contains("checked"))

            let agree = try view.ref("check box", "I agree")
            #expect(!(try await client.states(agree)).contains("checked"))
            _ = try await activate(client, agree)
            #expect(await Flows.eventually { (try? await client.states(agree))?.contains("checked") == true },
                    "the check box never became checked")

            let volume = try view.ref("slider", "Volume")
            _ = try await client.call("value.set", ["ref": .string(volume), "value": 7])
            // Chromium applies the value a moment after the call returns.
            #expect(await Flows.eventually {
                (try? await client.call("element.get", ["ref": .string(volume)]))?["value"]?["current"]?.doubleValue == 7
            }, "the slider never reached 7")

            _ = try await activate(client, try view.ref("push button", "Send"))
            let submitted = "Submitted: agree=true volume=7 name=[]"
            #expect(await Flows.eventually {
                try? await view.refresh(include: ["text"])
                return view.mentions(submitted)
            }, "the page never said \(submitted)")
            #expect(!view.mentions("Not sent"))
        }
    }

    /// Follow a link: the next page replaces the form in the tab.
    func followLink() async throws {
        try await withForm { session in
            let client = session.client
            _ = try await activate(client, try session.view.ref("link", "Next page"))
            let arrived = try await client.waitForElement(app: app, role: "document web", name: session.next.title)
            let window = try await client.waitForWindow(app: app, prefix: session.next.title)
            var view = AppView(client, app: app, root: window, within: arrived)
            try await view.refresh(include: ["text"])
            #expect(view.mentions("You followed the link"), "\(view.nodes.prefix(20))")
            let windows = try await client.call("apps.list").arrayValue?.filter { $0["name"]?.stringValue == app }
                .flatMap { $0["windows"]?.arrayValue ?? [] }.compactMap { $0["name"]?.stringValue } ?? []
            #expect(windows.contains { $0.hasPrefix(session.next.title) }, "window titles: \(windows)")
        }
    }

    /// The password input's value, and a value typed into it, appear in no reply, audit record,
    /// daemon log or state file; its text is hard-denied.
    func passwordCanary() async throws {
        let canary = "canary-\(RealApps.uniqueID())-\(RealApps.uniqueID())-SECRET"
        let typed = "typed-\(RealApps.uniqueID())-\(RealApps.uniqueID())-SECRET"
        try await withForm(password: canary) { session in
            let client = session.client
            let password = try session.view.ref("password text", "Password")
            var replies: [JSONValue] = []
            for include in [["text", "value", "actions", "bounds"], [String]()] {
                replies.append(try await client.call("tree.snapshot", ["app": .string(app), "include": .array(include.map(JSONValue.string)),
                                                                       "max_nodes": 20000]))
                replies.append(try await client.call("tree.snapshot", ["app": .string(app), "root": .string(session.window),
                                                                       "include": .array(include.map(JSONValue.string))]))
            }
            replies.append(try await client.call("tree.snapshot", ["app": .string(app), "root": .string(session.window), "format": "outline",
                                                                   "include": ["text", "value"]]))
            replies.append(try await client.call("element.get", ["ref": .string(password)]))
            replies.append(try await client.call("elements.find", ["app": .string(app), "role": "password text"]))
            replies.append(try await client.call("text.read", ["ref": .string(session.document)]))
            let found = try await client.call("elements.find", ["app": .string(app), "name_contains": .string(String(canary.prefix(12)))])
            #expect(found["nodes"]?.arrayValue?.isEmpty == true, "the canary is some element's name: \(found)")
            replies.append(found)
            if let denied = await Flows.failure(client, "text.read", ["ref": .string(password)]) {
                #expect(denied.code == .denied)
                #expect(denied.data?["reason"] == "hard_deny")
                replies.append(denied.json)
            }
            // Typing into it: whatever the browser does with it (docs/apps.md), the value is
            // recorded as its length only.
            do {
                replies.append(try await client.call("text.set", ["ref": .string(password), "value": .string(typed)]))
            } catch let error as RPCError {
                replies.append(error.json)
            }
            for reply in replies {
                let text = JSONWriter.string(reply)
                #expect(!text.contains(canary), "the page's password is in a reply: \(text.prefix(300))")
                #expect(!text.contains(typed), "the typed password is in a reply")
            }
            let written = String(decoding: session.daemon.allWrittenBytes(), as: UTF8.self)
            #expect(!written.contains(canary), "the page's password is in the daemon's files or log")
            #expect(!written.contains(typed), "the typed password is in the daemon's files or log")
            #expect(written.contains("text.set"), "no audit record of the text.set")
            for flow in Flows.records(session.daemon, method: "text.set") {
                #expect(flow.decision?["target"]?["value"] == ["len": .int(Int64(typed.count))],
                        "password fields: length only, got \(String(describing: flow.decision?["target"]))")
            }
        }
    }
}

@Suite("Real apps: Firefox", .serialized, .enabled(if: RealApps.enabled("firefox"), "needs scripts/headless-desktop.sh --app firefox"))
struct RealAppsFirefoxTests {
    let flows = BrowserFlows(kind: "firefox")

    @Test("a form by label: read it, check the box, set the slider, submit, and the page says what was sent")
    func form() async throws { try await flows.formTask() }

    @Test("following a link loads the next page in the tab")
    func link() async throws { try await flows.followLink() }

    @Test("the password input's value and a value typed into it are in no reply, record, log or file")
    func password() async throws { try await flows.passwordCanary() }
}

@Suite("Real apps: Chromium", .serialized, .enabled(if: RealApps.enabled("chromium"), "needs scripts/headless-desktop.sh --app chromium"))
struct RealAppsChromiumTests {
    let flows = BrowserFlows(kind: "chromium")

    @Test("a form by label: read it, check the box, set the slider, submit, and the page says what was sent")
    func form() async throws { try await flows.formTask() }

    @Test("following a link loads the next page in the tab")
    func link() async throws { try await flows.followLink() }

    @Test("the password input's value and a value typed into it are in no reply, record, log or file")
    func password() async throws { try await flows.passwordCanary() }

    @Test("Chromium web inputs have no EditableText: text.set and field.fill refuse, nothing is typed")
    func noEditableText() async throws {
        try await flows.withForm { session in
            let client = session.client
            let name = try session.view.ref("entry", "Full name")
            let set = await Flows.failure(client, "text.set", ["ref": .string(name), "value": "Alice"])
            #expect(set?.code == .notSupported, "\(String(describing: set))")
            let fill = await Flows.failure(client, "field.fill", ["app": "Chromium", "field": "Full name", "value": "Alice"])
            #expect(fill != nil)
            #expect(try await client.call("text.read", ["ref": .string(name)])["text"] == "")
        }
    }
}
