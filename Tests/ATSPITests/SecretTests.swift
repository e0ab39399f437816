import ATSPI
import Daemon
import DBus
import Logging
import Foundation
import DeskgateAPI
import JSONRPC
import Synchronization
import Testing

/// A canary set in each toolkit's password field must appear in no reply, outline or event.
@Suite("Password canary", .serialized, .enabled(if: Desktop.enabled, Desktop.reason))
struct SecretTests {
    @Test("in every toolkit's password field", arguments: ["gtk3", "gtk4", "qt5"])
    func canary(kind: String) async throws {
        let shared = try await Desktop.shared.get()
        // A service of its own whose every log line (trace level, with metadata) is kept.
        let logs = CapturingLogHandler.Store()
        let service = try await AccessibilityService.start(
            config: Desktop.testConfig(),
            logger: Logger(label: "canary") { _ in CapturingLogHandler(store: logs) })
        defer { Task { await service.shutdown() } }
        var app: FixtureApp?
        let appName: String
        if kind == "qt5" {
            appName = Qt5Tests.appName
            guard try await service.listApps().contains(where: { $0.name == appName }) else {
                Issue.record("Qt5 fixture is not running; run under scripts/headless-desktop.sh --app qt5")
                return
            }
        } else {
            app = try await FixtureApp.launch(kind, service: shared)
            appName = app!.name
        }
        let canary = "Canary\(UInt32.random(in: 100_000...999_999))Pw"
        var transcript: [String] = []
        let events = Mutex<[JSONValue]>([])
        let subscription = try await service.subscribe(["text", "name", "state", "children", "focus", "window"]) { event in
            events.withLock { $0.append(event) }
        }
        let snapshot = try await service.snapshot(app: appName)
        let password = try #require(snapshot.nodes.first { $0["role"] == "password text" }?.ref)
        // Wait until the app emits text events at all (it learns of new listeners through the
        // registry, asynchronously), typing into a plain field, so the check below is not vacuous.
        let plain = try #require(snapshot.nodes.first { $0["role"] == "text" }?.ref)
        var primed = false
        for attempt in 0..<50 where !primed {
            _ = try await service.setText(ref: plain, value: "prime \(attempt)")
            try await Task.sleep(for: .milliseconds(200))
            primed = events.withLock { $0.contains { $0["type"] == "text" } }
        }
        #expect(primed, "the app sends text events")
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
        transcript.append(String(describing: try await service.resolveElement(ref: password)))
        // Events are delivered in order: once the plain field's next event is here, any the
        // password field sent would be here too.
        _ = try await service.setText(ref: plain, value: "after the password")
        for _ in 0..<100 {
            if events.withLock({ $0.contains { $0["detail"]?["text"] == "after the password" } }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        await service.unsubscribe(subscription)
        let received = events.withLock { $0 }
        #expect(received.contains { $0["detail"]?["text"] == "after the password" })
        #expect(!received.contains { $0["type"] == "text" && $0["ref"]?.stringValue == password },
                "password fields send no text events at all: not their text, length or timing")
        transcript += received.map { JSONWriter.string($0) }
        transcript += logs.lines
        #expect(!logs.lines.isEmpty, "the service did log (the check below is not vacuous)")
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
            config: AccessibilityConfig(readTimeout: .seconds(2), requestDeadline: .seconds(5),
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

/// Keeps every log line with its metadata, at trace level.
struct CapturingLogHandler: LogHandler {
    final class Store: Sendable {
        private let storage = Mutex<[String]>([])
        var lines: [String] { storage.withLock { $0 } }
        func append(_ line: String) { storage.withLock { $0.append(line) } }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        store.append("\(event.level) \(event.message) \(merged)")
    }
}

@Suite("Service start and deadlines")
struct ServiceLimitTests {
    @Test("No accessibility bus: -32008")
    func noBus() async throws {
        do {
            _ = try await AccessibilityService.start(
                config: AccessibilityConfig(busAddress: "unix:path=/nonexistent/deskgate-a11y-bus", enableAccessibility: false),
                logger: Logger(label: "t"))
            Issue.record("started without a bus")
        } catch let error as AccessibilityError {
            #expect(error.rpcError.code == .busUnavailable)
        }
    }

    @Test("A walk that reaches the request deadline returns what it has, truncated",
          .enabled(if: Desktop.enabled, Desktop.reason))
    func deadline() async throws {
        let shared = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", rows: 600, service: shared)
        let service = try await AccessibilityService.start(
            config: AccessibilityConfig(readTimeout: .seconds(10), requestDeadline: .milliseconds(300),
                                        enableAccessibility: false),
            logger: Logger(label: "deadline-test"))
        defer { Task { await service.shutdown() } }
        let snapshot = try await service.snapshot(app: app.name)
        #expect(snapshot["truncated"] == true)
        #expect(snapshot["stats"]?["deadline_reached"] == true)
        #expect(!snapshot.nodes.isEmpty)
        #expect(snapshot.nodes.count < 4000)
        // Running out of request time is not the app's fault: it is not marked hung.
        #expect(try await service.listed(app.name)?.responding == true)
        // And it still answers in full when given the time (the 300 ms service may not reach
        // Submit, which follows the 600 rows, on a loaded machine).
        #expect(try await shared.find(app: app.name, role: "push button", name: "Submit").nodes.isEmpty == false)
    }
}
