import ATSPI
import Foundation
import DeskgateAPI
import JSONRPC
import Synchronization
import Testing

/// GTK4: no cache, no p2p; the snapshot walks the tree.
@Suite("AT-SPI on GTK4", .enabled(if: Desktop.enabled, Desktop.reason))
struct GTK4Tests {
    @Test("snapshot walks the tree and matches pyatspi")
    func snapshot() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", rows: 10, service: service)
        let snapshot = try await service.snapshot(app: app.name)
        #expect(snapshot["stats"]?["method"] == "walk")
        #expect(snapshot["truncated"] == false)
        #expect(snapshot.node(role: "push button", name: "Submit") != nil)
        #expect(snapshot.nodes.contains { $0["role"] == "password text" })
        // GTK 4.8 marks only windows SHOWING; the showing filter still finds the form.
        let showing = try await service.snapshot(app: app.name, filter: .showing)
        #expect(showing.node(role: "push button", name: "Submit") != nil)
        let reference = try Pyatspi.dump(app.name)
        #expect(snapshot.nodes.count == reference.count)
        let ours = snapshot.nodes.map { "\($0["depth"]!.intValue!) \($0["role"]!.stringValue!) \($0["name"]!.stringValue!)" }
        #expect(ours == reference.map { "\($0.depth) \($0.role) \($0.name)" })
    }

    @Test("activate clicks; text.set reads back with GetText(0, CharacterCount)")
    func activateAndSetText() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", service: service)
        let snapshot = try await service.snapshot(app: app.name)
        let submit = try #require(snapshot.node(role: "push button", name: "Submit")?.ref)
        let result = try await service.activate(ref: submit)
        #expect(result["action"] == "click")
        #expect(await app.waitForLine("clicked Submit"))
        let name = try #require(snapshot.nodes.first { $0["role"] == "text" && $0["name"] == "Name" }?.ref)
        let set = try await service.setText(ref: name, value: "Ada")
        #expect(set["matches"] == true)
        #expect(set["length"] == 3)
        #expect(try await service.readText(ref: name)["text"] == "Ada")
        #expect(await app.waitForLine("text-changed name 3"))
    }

    @Test("an app killed in the middle of a walk yields -32002, not a hang")
    func killedMidSnapshot() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", rows: 600, service: service)
        async let result: RPCError? = rpcError { try await service.snapshot(app: app.name) }
        try await Task.sleep(for: .milliseconds(150))
        app.terminate()
        let error = await result
        #expect(error?.code == .appNotFound)
        let after = await rpcError { try await service.snapshot(app: app.name) }
        #expect(after?.code == .appNotFound)
    }
}

/// Qt5 registers only when started before the accessibility bus exists, so it is started by
/// the harness (`--app qt5`), not by the tests; the suite runs serially on that one app.
@Suite("AT-SPI on Qt5", .serialized, .enabled(if: Desktop.enabled, Desktop.reason))
struct Qt5Tests {
    static let appName = "deskgate-fixture-qt5"

    func requireApp(_ service: AccessibilityService) async throws {
        let apps = try await service.listApps()
        if !apps.contains(where: { $0.name == Self.appName }) {
            Issue.record("Qt5 fixture \(Self.appName) is not registered; run under scripts/headless-desktop.sh --app qt5")
            throw CancellationError()
        }
    }

    @Test("snapshot walks the tree (no Properties.GetAll) and matches pyatspi")
    func snapshot() async throws {
        let service = try await Desktop.shared.get()
        try await requireApp(service)
        let snapshot = try await service.snapshot(app: Self.appName, include: [.actions])
        #expect(snapshot["stats"]?["method"] == "walk")
        let submit = try #require(snapshot.node(role: "push button", name: "Submit"))
        #expect(submit["actions"]?.arrayValue?.first == "press")
        let reference = try Pyatspi.dump(Self.appName)
        #expect(snapshot.nodes.count == reference.count)
        let ours = snapshot.nodes.map { "\($0["depth"]!.intValue!) \($0["role"]!.stringValue!) \($0["name"]!.stringValue!)" }
        #expect(ours == reference.map { "\($0.depth) \($0.role) \($0.name)" })
        // The app survived (Qt crashes on Properties.GetAll).
        #expect(try await service.listed(Self.appName)?.responding == true)
    }

    @Test("activate presses the button; text.set writes the line edit")
    func activateAndSetText() async throws {
        let service = try await Desktop.shared.get()
        try await requireApp(service)
        let snapshot = try await service.snapshot(app: Self.appName)
        let submit = try #require(snapshot.node(role: "push button", name: "Submit")?.ref)
        let before = try await service.snapshot(app: Self.appName)
        let status = { (s: JSONValue) in s.nodes.first { $0["name"]?.stringValue?.hasPrefix("Status:") == true }?["name"]?.stringValue }
        let result = try await service.activate(ref: submit)
        #expect(result["ok"] == true)
        #expect(result["action"] == "press")
        var changed = false
        for _ in 0..<50 where !changed {
            try await Task.sleep(for: .milliseconds(50))
            changed = status(try await service.snapshot(app: Self.appName)) != status(before)
        }
        #expect(changed, "the status label shows the click")
        let email = try #require(snapshot.nodes.first { $0["role"] == "text" && $0["name"] == "Email" }?.ref)
        let set = try await service.setText(ref: email, value: "qt@example.org")
        #expect(set["matches"] == true)
        #expect(try await service.readText(ref: email)["text"] == "qt@example.org")
    }
}
