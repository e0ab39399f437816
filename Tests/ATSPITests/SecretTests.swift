import ATSPI
import DBus
import Logging
import Foundation
import JSONRPC
import Synchronization
import Testing

/// A canary set in each toolkit's password field must appear in no reply, outline or event.
@Suite("Password canary", .serialized, .enabled(if: Desktop.enabled, Desktop.reason))
struct SecretTests {
    @Test("in every toolkit's password field", arguments: ["gtk3", "gtk4", "qt5"])
    func canary(kind: String) async throws {
        let service = try await Desktop.shared.get()
        var app: FixtureApp?
        let appName: String
        if kind == "qt5" {
            appName = Qt5Tests.appName
            guard try await service.listApps().contains(where: { $0.name == appName }) else {
                Issue.record("Qt5 fixture is not running; run under scripts/headless-desktop.sh --app qt5")
                return
            }
        } else {
            app = try await FixtureApp.launch(kind, service: service)
            appName = app!.name
        }
        let canary = "Canary\(UInt32.random(in: 100_000...999_999))Pw"
        var transcript: [String] = []
        let events = Mutex<[JSONValue]>([])
        let subscription = try await service.subscribe(["text", "name", "state", "children", "focus", "window"]) { event in
            events.withLock { $0.append(event) }
        }
        try await Task.sleep(for: .milliseconds(300))

        let snapshot = try await service.snapshot(app: appName)
        let password = try #require(snapshot.nodes.first { $0["role"] == "password text" }?.ref)
        let set = try await service.setText(ref: password, value: canary)
        transcript.append(JSONWriter.string(set))
        #expect(set["matches"] == true)
        #expect(set["length"]?.intValue == Int64(canary.count))
        // Type more into it through the other paths too.
        transcript.append(JSONWriter.string(try await service.fillField(app: appName, field: "Password", value: canary)))
        try await Task.sleep(for: .milliseconds(500))

        for include in [SnapshotIncludes.bounds.union(.actions).union(.text).union(.value)] {
            transcript.append(JSONWriter.string(try await service.snapshot(app: appName, include: include)))
            transcript.append(JSONWriter.string(try await service.snapshot(app: appName, filter: .interactive, include: include)))
            transcript.append(JSONWriter.string(try await service.snapshot(app: appName, format: .outline, include: include)))
        }
        transcript.append(JSONWriter.string(try await service.get(ref: password)))
        transcript.append(JSONWriter.string(try await service.find(app: appName, role: "password text")))
        transcript.append(JSONWriter.string(try await service.find(app: appName, nameContains: "canary")))
        let denied = await rpcError { try await service.readText(ref: password) }
        #expect(denied?.code == .denied)
        transcript.append(denied.map { JSONWriter.string($0.json) } ?? "")
        transcript.append(String(describing: try await service.elementTarget(ref: password)))
        await service.unsubscribe(subscription)
        let received = events.withLock { $0 }
        #expect(received.contains { $0["type"] == "text" }, "text events did arrive (the check below is not vacuous)")
        transcript += received.map { JSONWriter.string($0) }
        let leaks = transcript.filter { $0.contains(canary) || $0.lowercased().contains(canary.lowercased()) }
        #expect(leaks.isEmpty, "the canary leaked: \(leaks.count) replies")
        _ = app
    }
}

/// Frozen apps: a SIGSTOPped app costs a timeout, then fails fast, while others are served.
@Suite("Frozen apps", .enabled(if: Desktop.enabled, Desktop.reason))
struct FrozenAppTests {
    @Test("SIGSTOP: -32004 within the deadline while another app is served; served again after SIGCONT")
    func stopped() async throws {
        let shared = try await Desktop.shared.get()
        let frozen = try await FixtureApp.launch("gtk3", service: shared)
        let other = try await FixtureApp.launch("gtk3", service: shared)
        // The production timeouts (500 ms per small read), on a service of its own.
        let service = try await AccessibilityService.start(
            config: AccessibilityConfig(smallCallTimeout: .seconds(2), requestDeadline: .seconds(5),
                                        enableAccessibility: false),
            logger: Logger(label: "frozen-test"))
        defer { Task { await service.shutdown() } }
        _ = try await service.snapshot(app: frozen.name)
        frozen.signal(SIGSTOP)
        defer { frozen.signal(SIGCONT) }
        async let frozenResult = rpcError { try await service.snapshot(app: frozen.name) }
        let otherSnapshot = try await service.snapshot(app: other.name)
        #expect(otherSnapshot.nodes.count == 28)
        let error = await frozenResult
        #expect(error?.code == .appNotResponding)
        // Fails fast now (no new timeout): the app is marked hung.
        let again = await rpcError { try await service.snapshot(app: frozen.name) }
        #expect(again?.code == .appNotResponding)
        #expect(try await service.listApps().first { $0.name == frozen.name }?.responding == false)
        frozen.signal(SIGCONT)
        var recovered = false
        for _ in 0..<60 where !recovered {
            try await Task.sleep(for: .milliseconds(100))
            recovered = (try? await service.snapshot(app: frozen.name)) != nil
        }
        #expect(recovered, "served again once Peer.Ping answers")
    }

    @Test("A stale process-wide IsEnabled is restored on shutdown")
    func isEnabledRestored() async throws {
        try Desktop.requireAvailable()
        guard Desktop.environment["DBUS_SESSION_BUS_ADDRESS"] != nil else { return }
        let session = try await DBusSessionHelper.open()
        try await DBusSessionHelper.setIsEnabled(false, on: session)
        let service = try await AccessibilityService.start(config: AccessibilityConfig(), logger: .init(label: "t"))
        #expect(try await DBusSessionHelper.isEnabled(on: session) == true)
        await service.shutdown()
        #expect(try await DBusSessionHelper.isEnabled(on: session) == false)
        try await DBusSessionHelper.setIsEnabled(true, on: session)
        session.close()
    }
}
