@testable import ATSPI
import DBus
import DeskgateAPI
import JSONRPC
import Testing

/// The vocabulary an agent needs, against the GTK3 fixture's extras (`--extras`): results that
/// wait for the app to apply an action, choosing options, inserting text, waiting for elements,
/// and edits an app ignores.
@Suite("Actions that wait for the app (GTK3)", .enabled(if: Desktop.enabled, Desktop.reason))
struct ActionTests {
    static func extrasApp(_ service: AccessibilityService) async throws -> (FixtureApp, JSONValue) {
        let app = try await FixtureApp.launch("gtk3", arguments: ["--extras"], service: service)
        return (app, try await service.snapshot(app: app.name))
    }

    @Test("activate: a toggle the app sets 200 ms later is reported with its new state (settled), both ways")
    func activateSettles() async throws {
        let service = try await Desktop.shared.get()
        let (app, snapshot) = try await Self.extrasApp(service)
        let bold = try #require(snapshot.node(role: "toggle button", name: "Bold")?.ref)
        let on = try await service.activate(ref: bold)
        #expect(on["states"]?.arrayValue?.contains("checked") == true, "states: \(on)")
        #expect(on["settled"] == true)
        #expect(await app.waitForLine("toggled Bold 1"))
        let off = try await service.activate(ref: bold)
        #expect(off["states"]?.arrayValue?.contains("checked") == false, "states: \(off)")
        #expect(off["settled"] == true)
    }

    @Test("activate of a plain button does not wait: settled, states as read")
    func plainButtonSettledAtOnce() async throws {
        let service = try await Desktop.shared.get()
        let (app, snapshot) = try await Self.extrasApp(service)
        let submit = try #require(snapshot.node(role: "push button", name: "Submit")?.ref)
        let result = try await service.activate(ref: submit)
        #expect(result["settled"] == true)
        #expect(result["action"] == "click")
        #expect(await app.waitForLine("clicked Submit"))
    }

    @Test("element.select: a combo box option by name, then by index; the app reports each")
    func selectOption() async throws {
        let service = try await Desktop.shared.get()
        let (app, snapshot) = try await Self.extrasApp(service)
        // GTK3 names a combo box after its current item.
        let combo = try #require(snapshot.node(role: "combo box", name: "Red")?.ref)
        let blue = try await service.select(ref: combo, choice: .name("Blue"))
        #expect(blue.option == "Blue")
        #expect(blue.index == 2)
        #expect(blue.selected)
        #expect(await app.waitForLine("combo-changed Blue"))
        let green = try await service.select(ref: combo, choice: .index(1))
        #expect(green.option == "Green")
        #expect(green.selected)
        #expect(await app.waitForLine("combo-changed Green"))
        // Errors name what there is.
        let missing = await rpcError { try await service.select(ref: combo, choice: .name("Purple")) }
        #expect(missing?.code == .notSupported)
        #expect(missing?.data?["actions"] == ["Red", "Green", "Blue"])
        let outOfRange = await rpcError { try await service.select(ref: combo, choice: .index(7)) }
        #expect(outOfRange?.code == .invalidParams)
        // Not a list: a clear error, nothing done.
        let submit = try #require(snapshot.node(role: "push button", name: "Submit")?.ref)
        let notList = await rpcError { try await service.select(ref: submit, choice: .index(0)) }
        #expect(notList?.code == .notSupported)
    }

    @Test("text.insert: at an offset, at the end, and at the caret by default")
    func insertText() async throws {
        let service = try await Desktop.shared.get()
        let (_, snapshot) = try await Self.extrasApp(service)
        let name = try #require(snapshot.node(role: "text", name: "Name")?.ref)
        _ = try await service.setText(ref: name, value: "Alice")
        let front = try await service.insertText(ref: name, value: "Dr ", at: 0)
        #expect(front["matches"] == true)
        #expect(front["length"] == 8)
        #expect(try await service.readText(ref: name)["text"] == "Dr Alice")
        _ = try await service.insertText(ref: name, value: " Smith", at: 8)
        #expect(try await service.readText(ref: name)["text"] == "Dr Alice Smith")
        let atCaret = try await service.insertText(ref: name, value: "!")
        #expect(atCaret["length"] == 15)
        let text = try #require(try await service.readText(ref: name)["text"]?.stringValue)
        #expect(text.contains("!") && text.count == 15)
        let outside = await rpcError { try await service.insertText(ref: name, value: "x", at: 99) }
        #expect(outside?.code == .invalidParams)
    }

    @Test("An edit the app answers but does not keep is an error (ignored_by_app), not ok")
    func ignoredEdit() async throws {
        let service = try await Desktop.shared.get()
        let (_, snapshot) = try await Self.extrasApp(service)
        let locked = try #require(snapshot.node(role: "text", name: "Locked")?.ref)
        let error = await rpcError { try await service.setText(ref: locked, value: "changed") }
        #expect(error?.code == .notSupported)
        #expect(error?.data?["reason"] == "ignored_by_app")
        #expect(try await service.readText(ref: locked)["text"] == "fixed")
    }

    @Test("elements.wait: returns when an element appears and when it is gone; a timeout is found: false")
    func waitForElements() async throws {
        let service = try await Desktop.shared.get()
        let (app, snapshot) = try await Self.extrasApp(service)
        let later = try #require(snapshot.node(role: "push button", name: "Show later")?.ref)
        _ = try await service.activate(ref: later)
        let appeared = try await service.waitFor(app: app.name, ElementQuery(role: "push button", name: "Appeared"),
                                                 timeoutMs: 10_000)
        #expect(appeared.found)
        #expect(appeared.node?.name == "Appeared")
        #expect(await app.waitForLine("appeared"))
        let never = try await service.waitFor(app: app.name, ElementQuery(name: "No such element"), timeoutMs: 300)
        #expect(!never.found)
        #expect(never.node == nil)
        #expect(never.queries >= 2)  // the first look, and the last one at the deadline
        let remove = try #require(snapshot.node(role: "push button", name: "Remove row")?.ref)
        _ = try await service.activate(ref: remove)
        let gone = try await service.waitFor(app: app.name, ElementQuery(role: "push button", name: "Temporary"), gone: true,
                                             timeoutMs: 10_000)
        #expect(gone.found)
    }

    @Test("value.set waits for the value to show; settled")
    func valueSettles() async throws {
        let service = try await Desktop.shared.get()
        let (app, snapshot) = try await Self.extrasApp(service)
        let volume = try #require(snapshot.node(role: "slider", name: "Volume")?.ref)
        let result = try await service.setValue(ref: volume, value: 7)
        #expect(result["value"] == 7.0)
        #expect(result["settled"] == true)
        #expect(await app.waitForLine("value-changed volume 7"))
    }
}

/// How action names are read from toolkits that fill `GetActions` in poorly.
@Suite("Action names")
struct ActionNameTests {
    static func reply(_ entries: [(String, String, String)]) -> [DBusValue] {
        [.array(elementSignature: "(sss)", entries.map { .structure([.string($0.0), .string($0.1), .string($0.2)]) })]
    }

    @Test("Names as the toolkit gives them, lower case; empty (Chromium) and key-binding triples (Gecko) asked by index")
    func parse() {
        #expect(ActionNames.parse(Self.reply([("Click", "Clicks the button", "<Alt>c")])) == ["click"])
        #expect(ActionNames.parse(Self.reply([("", "", ""), ("", "", "")])) == [nil, nil])
        #expect(ActionNames.parse(Self.reply([(";;", ";;", ";;")])) == [nil])
        #expect(ActionNames.parse(Self.reply([("press", "", ""), ("", "", "")])) == ["press", nil])
        #expect(ActionNames.parse(Self.reply([])) == [])
        #expect(ActionNames.parse(nil) == [])
    }

    @Test("Settling: toggles expect checked or pressed to flip, radios only when unchecked, expandables expanded")
    func expectations() {
        let toggle = SettleExpectation.activation(role: AtspiNames.roleNumbers["toggle button"]!, states: StateSet(bits: 0))
        #expect(toggle.isMet(before: [], after: ["checked"]))
        #expect(toggle.isMet(before: ["pressed"], after: []))
        #expect(!toggle.isMet(before: ["checked"], after: ["checked"]))
        let plain = SettleExpectation.activation(role: AtspiNames.roleNumbers["push button"]!, states: StateSet(bits: 0))
        #expect(plain.isEmpty && plain.isMet(before: [], after: []))
    }
}
