#if canImport(Glibc)
import Glibc
#endif
@testable import ATSPI
import Audit
import Broker
import CLinux
@testable import Daemon
import DeskgateAPI
import Foundation
import JSONRPC
import Logging
import Synchronization
import Testing

/// The request path in process, without a desktop: the real dispatcher and handlers in front of
/// a desktop held in memory, with a scripted gate or with the real broker and audit log.
@Suite("Request path in process")
struct RequestPathTests {
    // MARK: - With a scripted gate

    @Test("one resolution per request; the gate decides on the target the handler then acts on")
    func oneResolutionOneTarget() async throws {
        let desktop = FakeDesktop()
        let gate = ScriptedGate()
        let path = RequestPath(desktop: desktop, gate: gate)
        let reply = try await path.call("element.activate", ["ref": "submit"]).get()
        #expect(reply["ok"] == true)
        #expect(desktop.resolutions == 1, "the target was resolved \(desktop.resolutions) times")
        let decided = try #require(gate.calls.first?.target?.element)
        let acted = try #require(desktop.acted.first)
        #expect(acted.method == "activate")
        #expect(acted.target.element?.ref == decided.ref)
        #expect(acted.target.element?.name == decided.name)
        #expect(gate.completed == 1)
    }

    @Test("a denial stops the request before the handler; nothing is done")
    func denialStops() async throws {
        let desktop = FakeDesktop()
        let gate = ScriptedGate(deny: true)
        let path = RequestPath(desktop: desktop, gate: gate)
        let error = try #require(await path.call("text.set", ["ref": "name", "value": "x"]).failure)
        #expect(error.code == .denied)
        #expect(desktop.acted.isEmpty)
    }

    @Test("an element changed while the decision was made (a prompt waited): changed, nothing done, outcome recorded")
    func changedDuringDecision() async throws {
        let desktop = FakeDesktop()
        let gate = ScriptedGate(whileDeciding: { desktop.rename("submit", to: "Delete everything") })
        let path = RequestPath(desktop: desktop, gate: gate)
        let error = try #require(await path.call("element.activate", ["ref": "submit"]).failure)
        #expect(error.code == .elementNotFound)
        #expect(error.data?["reason"] == "changed")
        #expect(error.data?["what"] == "name")
        #expect(desktop.acted.isEmpty)
        #expect(gate.outcomes.first?.failure?.data?["reason"] == "changed")
    }

    @Test("interactive is read once, by the dispatcher; methods never see it as a param")
    func interactiveInOnePlace() async throws {
        let gate = ScriptedGate()
        let path = RequestPath(desktop: FakeDesktop(), gate: gate)
        _ = await path.call("element.activate", ["ref": "submit", "interactive": false])
        _ = await path.call("element.activate", ["ref": "submit"])
        #expect(gate.calls.map(\.interactive) == [false, true])
    }

    @Test("a resolution that finds the ref's role changed is recorded as refused, and never decided")
    func roleChangedAtResolution() async throws {
        let desktop = FakeDesktop()
        desktop.changeRole("submit", to: "check box")
        let gate = ScriptedGate()
        let path = RequestPath(desktop: desktop, gate: gate)
        let error = try #require(await path.call("element.activate", ["ref": "submit"]).failure)
        #expect(error.data?["reason"] == "changed")
        #expect(gate.calls.isEmpty)
        #expect(gate.refusals == 1)
    }

    // MARK: - With the real broker and audit log

    @Test("field.fill: the broker decides on the field found, so variants of a denied label are refused")
    func fillDecidesOnFieldFound() async throws {
        let world = try RealGate(policy: """
            [[rule]]
            id = "all"
            effect = "allow"
            actions = ["observe", "write"]
            [[rule]]
            id = "no-email"
            effect = "deny"
            actions = ["write"]
            name = "Email"
            """)
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker)
        for variant in ["email", " EMAIL ", "Email:"] {
            let error = try #require(await path.call("field.fill", ["app": "ledger", "field": .string(variant), "value": "x"]).failure)
            #expect(error.data?["rule"] == "no-email", "\(variant): \(error)")
        }
        #expect(try await path.call("field.fill", ["app": "ledger", "field": "name", "value": "Ada"]).get()["ref"] == "name")
        #expect(world.desktop.acted.map(\.target.element?.ref) == ["name"])
        let decisions = try await world.records(kind: "decision", method: "field.fill")
        #expect(decisions.first?["target"]?["name"] == "Email")
        #expect(decisions.first?["target"]?["role"] == "text")
    }

    @Test("a password value filled by label is recorded as its length only")
    func passwordLengthOnly() async throws {
        let world = try RealGate(policy: "[[rule]]\neffect = \"allow\"\nactions = [\"write\"]\n")
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker)
        _ = try await path.call("field.fill", ["app": "ledger", "field": "Password", "value": "hunter22"]).get()
        let decision = try #require(try await world.records(kind: "decision", method: "field.fill").first)
        #expect(decision["target"]?["value"] == ["len": 8])
    }

    @Test("element.select is decided on the combo box and records the option asked for; browser.navigate records the URL")
    func selectAndNavigateAudited() async throws {
        let world = try RealGate(policy: "[[rule]]\neffect = \"allow\"\nactions = [\"act\", \"write\"]\n")
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker)
        let chosen = try await path.call("element.select", ["ref": "color", "option_name": "Blue"]).get()
        #expect(chosen["option"] == "Blue")
        #expect(chosen["index"] == 2)
        let select = try #require(try await world.records(kind: "decision", method: "element.select").first)
        #expect(select["target"]?["role"] == "combo box")
        #expect(select["target"]?["name"] == "Color")
        #expect(select["target"]?["params"] == ["option_name": "Blue"])
        // Exactly one of option_name and index.
        let both = try #require(await path.call("element.select", ["ref": "color", "option_name": "Blue", "index": 1]).failure)
        #expect(both.code == .invalidParams)
        let neither = try #require(await path.call("element.select", ["ref": "color"]).failure)
        #expect(neither.code == .invalidParams)

        let loaded = try await path.call("browser.navigate", ["app": "ledger", "url": "https://example.org:8443/a?b=c"]).get()
        #expect(loaded["origin"] == "https://example.org:8443")
        let navigate = try #require(try await world.records(kind: "decision", method: "browser.navigate").first)
        #expect(navigate["target"]?["params"] == ["url": "https://example.org:8443/a?b=c"])
        #expect(navigate["decision"]?["class"] == "write")
        // A URL that is not http(s) is refused before anything is done, with a clear error.
        let file = try #require(await path.call("browser.navigate", ["app": "ledger", "url": "file:///etc/passwd"]).failure)
        #expect(file.code == .invalidParams)
        #expect(world.desktop.acted.map(\.method) == ["select", "navigate"])
    }

    @Test("a ref renamed since it was shown: refused for act and write, recorded as changed; readable")
    func renamedSinceShown() async throws {
        let world = try RealGate(policy: "[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        world.desktop.rename("submit", to: "Delete everything", shown: false)
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker)
        let error = try #require(await path.call("element.activate", ["ref": "submit"]).failure)
        #expect(error.data?["reason"] == "changed")
        #expect(world.desktop.acted.isEmpty)
        let outcomes = try await world.records(kind: "outcome", method: "element.activate")
        #expect(outcomes.map { $0["outcome"] } == ["changed"])
        #expect(outcomes.first?["target"]?["shown_name"] == "Submit")
        // Reading is decided on what the element is now; nothing was shown under another name.
        #expect(try await path.call("text.read", ["ref": "submit"]).get()["text"] == "Delete everything")
    }

    @Test("apps.list shows only apps a rule or remembered grant allows; ask is no")
    func listingDecidedPerApp() async throws {
        let world = try RealGate(policy: "[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\napp = \"ledger\"\n")
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker)
        let listed = try await path.call("apps.list", nil).get()
        #expect(listed.arrayValue?.compactMap { $0["name"]?.stringValue } == ["ledger"])
    }

    @Test("broker.check answers as the call would, and describes no element of an app the caller may not observe")
    func checkTellsNothing() async throws {
        let world = try RealGate(policy: """
            default = "deny"
            [[rule]]
            id = "no-delete"
            effect = "deny"
            actions = ["act"]
            name = "Submit"
            """)
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker)
        let check = try await path.call("broker.check", ["method": "element.activate", "params": ["ref": "submit"]]).get()
        #expect(check["effect"] == "deny")
        #expect(check["rule"] == .null, "the rule names the element: \(check)")
        #expect(check["message"]?.stringValue?.contains("Submit") == false)
        let stream = try await path.call("broker.check", ["method": "events.subscribe", "params": ["events": ["state"]]]).get()
        #expect(stream["effect"] == "allow")
        #expect(stream["reason"] == "filtered_per_app")
        let real = try #require(await path.call("element.activate", ["ref": "submit"]).failure)
        #expect(real.data?["reason"] == "locked_down" || real.data?["reason"] == "policy")
    }

    @Test("an open stream loses an app at once when a reload denies it: one withheld event, then nothing")
    func streamWithheldOnReload() async throws {
        let world = try RealGate(policy: "[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\n")
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker, changes: world.changes)
        _ = try await path.call("events.subscribe", ["events": ["state"]]).get()
        world.desktop.emit(state: "checked", app: "ledger", ref: "subscribe")
        #expect(path.outbound.events.count == 1)
        try "default = \"deny\"\n".write(toFile: world.sandbox + "/config/policy.toml", atomically: true, encoding: .utf8)
        world.broker.reload()
        let withheld = path.outbound.events.filter { $0["type"] == "withheld" }
        #expect(withheld.count == 1)
        #expect(withheld.first?["app"] == ":1.1")
        world.desktop.emit(state: "checked", app: "ledger", ref: "subscribe")
        #expect(path.outbound.events.count == 2, "\(path.outbound.events)")
    }
}

// MARK: - The harness

/// The daemon's dispatcher and accessibility handlers over a fake desktop, with one session.
struct RequestPath {
    let dispatcher: Dispatcher
    let session: ClientSession
    let outbound = CapturingOutbound()

    init(desktop: FakeDesktop, gate: any RequestGate, broker: Broker? = nil, changes: ChangeRelay? = nil,
         logger: Logger = Logger(label: "test")) {
        var table = MethodTable()
        let streams = EventStreams(broker: broker)
        AccessibilityHandlers.register(into: &table, source: FixedSource(desktop: desktop), broker: broker, streams: streams)
        if let broker {
            let tableBox = Mutex<MethodTable?>(nil)
            BrokerHandlers.register(into: &table, broker: broker, audit: nil, resolveTarget: { method, params, context in
                guard let entry = tableBox.withLock({ $0?.entry(method) }), let resolve = entry.resolve else { return nil }
                return try await resolve(try entry.decode(params), context)
            }, liveExecutables: { [] }, logger: logger)
            let done = table
            tableBox.withLock { $0 = done }
            changes?.handler.withLock { $0 = { streams.refresh() } }
        }
        dispatcher = Dispatcher(table: table, gate: gate, logger: logger)
        let exe = ProcessInspection.readLink("/proc/self/exe") ?? "/proc/self/exe"
        session = ClientSession(id: 7, identity: PeerIdentity(uid: getuid(), gid: getgid(), pid: getpid(), exe: exe,
                                                              exeFileID: ProcessInspection.fileID(path: "/proc/self/exe"),
                                                              unit: nil, script: nil, pidfdSource: .pidfdOpen),
                                pidfd: deskgate_pidfd_open(getpid()), outbound: outbound)
    }

    func call(_ method: String, _ params: JSONValue?) async -> Result<JSONValue, RPCError> {
        switch await dispatcher.dispatch(Request(id: .int(1), method: method, params: params), session: session) {
        case .success(.value(let value)): .success(value)
        case .success(.encoded(let encoded)): .success((try? JSONParser.parse(encoded.bytes)) ?? .null)
        case .failure(let error): .failure(error)
        }
    }
}

extension Result where Failure == RPCError {
    var failure: RPCError? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// Lines the daemon would send to the client.
final class CapturingOutbound: ConnectionOutbound {
    private let lines = Mutex<[[UInt8]]>([])
    func send(_ line: [UInt8]) { lines.withLock { $0.append(line) } }
    func close() {}

    /// The params of every `event` notification sent.
    var events: [JSONValue] {
        lines.withLock { $0 }.compactMap { try? JSONParser.parse($0) }.filter { $0["method"] == "event" }.compactMap { $0["params"] }
    }
}

/// A gate whose decisions the test scripts; it records what it was asked.
final class ScriptedGate: RequestGate {
    private struct State {
        var calls: [GatedCall] = []
        var outcomes: [Result<MethodResult, RPCError>] = []
        var refusals = 0
    }
    private let state = Mutex(State())
    let deny: Bool
    let whileDeciding: @Sendable () -> Void

    init(deny: Bool = false, whileDeciding: @escaping @Sendable () -> Void = {}) {
        self.deny = deny
        self.whileDeciding = whileDeciding
    }

    var calls: [GatedCall] { state.withLock { $0.calls } }
    var completed: Int { state.withLock { $0.outcomes.count } }
    var outcomes: [Result<MethodResult, RPCError>] { state.withLock { $0.outcomes } }
    var refusals: Int { state.withLock { $0.refusals } }

    func authorize(_ call: GatedCall) async throws -> GateTicket {
        state.withLock { $0.calls.append(call) }
        whileDeciding()
        if deny { throw RPCError(.denied, "Denied", data: ["reason": "policy", "class": .string(call.riskClass.rawValue)]) }
        return GateTicket(call.descriptor.name)
    }

    func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws {
        state.withLock { $0.outcomes.append(outcome) }
    }

    func refused(_ call: GatedCall, error: RPCError) async throws {
        state.withLock { $0.refusals += 1 }
    }
}

/// Passes the broker's `decisionsChanged` on to whoever listens.
final class ChangeRelay: Sendable {
    let handler = Mutex<(@Sendable () -> Void)?>(nil)
    func fire() { handler.withLock { $0 }?() }
}

/// The real gate: a broker with a policy file and an audit log, in a temp directory.
struct RealGate {
    let sandbox: String
    let changes = ChangeRelay()
    let broker: Broker
    let audit: AuditLog
    let gate: AuditedBrokerGate
    let desktop = FakeDesktop()

    init(policy: String, logger: Logger = Logger(label: "test")) throws {
        sandbox = NSTemporaryDirectory() + "deskgate-path-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: sandbox + "/config", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: sandbox + "/policy.d", withIntermediateDirectories: true)
        try policy.write(toFile: sandbox + "/config/policy.toml", atomically: true, encoding: .utf8)
        broker = Broker(config: BrokerConfig(systemPolicyDir: sandbox + "/policy.d", userPolicyFile: sandbox + "/config/policy.toml",
                                             grantsFile: sandbox + "/grants.json", defaultPromptHelpers: []),
                        inspector: ProcfsInspector(), events: { [changes] event in
                            if case .decisionsChanged = event { changes.fire() }
                        }, logger: logger)
        broker.reload()
        audit = try AuditLog.open(config: AuditConfig(directory: sandbox + "/audit", journal: .off), logger: logger)
        gate = AuditedBrokerGate(broker: broker, audit: audit, logger: logger)
    }

    func records(kind: String, method: String) async throws -> [JSONValue] {
        try await audit.query(AuditFilter(json: ["limit": 1000])).json["records"]?.arrayValue?
            .filter { $0["kind"]?.stringValue == kind && $0["method"]?.stringValue == method } ?? []
    }
}

/// Hands out the fake desktop.
struct FixedSource: AccessibilitySource {
    let desktop: FakeDesktop
    func get() async throws -> any Accessibility { desktop }
    var status: JSONValue { ["connected": true] }
    func shutdown() async {}
}

/// One app ("ledger", id ":1.1") with a form, held in memory. Elements change only when a test
/// says so; every resolution is counted and every action recorded with the target it got.
final class FakeDesktop: Accessibility {
    struct Element: Sendable {
        var role: String
        var name: String
        var label: String?
        var shownName: String
        var text: String = ""
    }

    private struct State {
        var elements: [String: Element] = [
            "name": Element(role: "text", name: "", label: "Name", shownName: ""),
            "email": Element(role: "text", name: "", label: "Email", shownName: ""),
            "password": Element(role: "password text", name: "", label: "Password", shownName: ""),
            "submit": Element(role: "push button", name: "Submit", shownName: "Submit"),
            "subscribe": Element(role: "check box", name: "Subscribe", shownName: "Subscribe"),
            "color": Element(role: "combo box", name: "", label: "Color", shownName: ""),
        ]
        var resolutions = 0
        var acted: [(method: String, target: ResolvedTarget)] = []
        var handlers: [@Sendable (AccessibilityEvent) -> Void] = []
    }

    private let state = Mutex(State())
    let app = AppTarget(id: ":1.1", name: "ledger", pid: 4242, exe: "/usr/bin/ledger", startTime: 1)
    let other = AppTarget(id: ":1.2", name: "diary", pid: 4343, exe: "/usr/bin/diary", startTime: 2)

    var resolutions: Int { state.withLock { $0.resolutions } }
    var acted: [(method: String, target: ResolvedTarget)] { state.withLock { $0.acted } }

    func rename(_ ref: String, to name: String, shown: Bool = true) {
        state.withLock { state in
            state.elements[ref]?.name = name
            state.elements[ref]?.text = name
            if shown { state.elements[ref]?.shownName = name }
        }
    }

    func changeRole(_ ref: String, to role: String) { state.withLock { $0.elements[ref]?.role = role } }

    func emit(state name: String, app: String, ref: String) {
        let event = AccessibilityEvent(kind: .state, app: self.app.id, appTarget: self.app, ref: ref, role: "check box",
                                       sourceName: nil, detail: .state(name: name, value: true))
        for handler in state.withLock({ $0.handlers }) { handler(event) }
    }

    private func target(_ ref: String) throws(AccessibilityError) -> ResolvedTarget {
        guard let element = state.withLock({ $0.elements[ref] }) else { throw .elementGone("unknown element ref \(ref)") }
        return ResolvedTarget(app: app, element: ElementTarget(ref: ref, role: element.role, name: element.name,
                                                                label: element.label, shownName: element.shownName))
    }

    func resolveApp(_ idOrName: String) async throws(AccessibilityError) -> ResolvedTarget {
        for candidate in [app, other] where candidate.id == idOrName || candidate.name == idOrName {
            return ResolvedTarget(app: candidate)
        }
        throw .appNotFound(idOrName, someUnresponsive: false)
    }

    func resolveElement(ref: String) async throws(AccessibilityError) -> ResolvedTarget {
        state.withLock { $0.resolutions += 1 }
        let resolved = try target(ref)
        if ref == "submit", resolved.element?.role != "push button" {
            throw .changed(ChangeDetail(what: "role", was: "push button", now: resolved.element?.role ?? "", ref: ref))
        }
        return resolved
    }

    func resolveElement(ref: String, in app: ResolvedTarget) async throws(AccessibilityError) -> ResolvedTarget {
        try await resolveElement(ref: ref)
    }

    func resolveField(app: String, field: String, passwordOnly: Bool) async throws(AccessibilityError) -> ResolvedTarget {
        state.withLock { $0.resolutions += 1 }
        let fields = ["name", "email", "password"]
        let elements = state.withLock { state in fields.map { state.elements[$0]! } }
        let found = FieldMatcher.matches(field, candidates: elements.map { FieldMatcher.Candidate(name: $0.name, label: $0.label) })
        guard found.count == 1 else { throw found.isEmpty ? .fieldNotFound(field) : .ambiguousField(field, candidates: []) }
        if passwordOnly, elements[found[0]].role != "password text" { throw .notSupported("not a password field") }
        return try target(fields[found[0]])
    }

    /// What the service does right before acting: the element must still be what was decided.
    private func confirm(_ target: ResolvedTarget, _ method: String) throws(AccessibilityError) {
        guard let element = target.element else {
            state.withLock { $0.acted.append((method, target)) }
            return
        }
        let now = try self.target(element.ref).element!
        if now.name != element.name { throw .changed(ChangeDetail(what: "name", was: element.name, now: now.name, ref: element.ref)) }
        if now.role != element.role { throw .changed(ChangeDetail(what: "role", was: element.role, now: now.role, ref: element.ref)) }
        state.withLock { $0.acted.append((method, target)) }
    }

    func listApps(where include: @Sendable (AppTarget) -> Bool) async throws(AccessibilityError) -> [AppInfo] {
        [app, other].filter(include).map {
            AppInfo(id: $0.id, name: $0.name, pid: $0.pid, exe: $0.exe, toolkit: "fake", windows: [], responding: true)
        }
    }

    func snapshot(_ target: ResolvedTarget, options: SnapshotOptions, content: ContentDecider?) async throws(AccessibilityError)
        -> SnapshotResult { throw .notSupported("the fake desktop has no trees") }
    func find(_ target: ResolvedTarget, role: String?, name: String?, nameContains: String?, states: [String],
              limit: Int) async throws(AccessibilityError) -> FoundElements { throw .notSupported("the fake desktop has no trees") }
    func details(_ target: ResolvedTarget, content: Bool) async throws(AccessibilityError) -> ElementNode {
        throw .notSupported("the fake desktop has no trees")
    }

    func readText(_ target: ResolvedTarget) async throws(AccessibilityError) -> String {
        try confirm(target, "readText")
        return state.withLock { $0.elements[target.element!.ref]?.text ?? "" }
    }

    func activate(_ target: ResolvedTarget, action: String?) async throws(AccessibilityError) -> ActivateResult {
        try confirm(target, "activate")
        return ActivateResult(performed: true, action: "click", states: [], settled: true)
    }

    func focus(_ target: ResolvedTarget) async throws(AccessibilityError) -> FocusResult {
        try confirm(target, "focus")
        return FocusResult(accepted: true, states: ["focused"], settled: true)
    }

    func setText(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult {
        try confirm(target, "setText")
        state.withLock { $0.elements[target.element!.ref]?.text = value }
        return SetTextResult(accepted: true, matches: true, length: value.count)
    }

    func setPassword(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult {
        guard target.element?.role == "password text" else { throw .notSupported("not a password field") }
        return try await setText(target, value: value)
    }

    func setValue(_ target: ResolvedTarget, value: Double) async throws(AccessibilityError) -> SetValueResult {
        throw .notSupported("element has no value")
    }

    func select(_ target: ResolvedTarget, choice: OptionChoice) async throws(AccessibilityError) -> SelectResult {
        try confirm(target, "select")
        let options = ["Red", "Green", "Blue"]
        let index: Int
        switch choice {
        case .index(let i): index = i
        case .name(let name):
            guard let i = options.firstIndex(of: name) else { throw .notSupported("no option named \(name)") }
            index = i
        }
        return SelectResult(option: options[index], index: index, selected: true, method: "selection", settled: true)
    }

    func scrollIntoView(_ target: ResolvedTarget) async throws(AccessibilityError) -> ScrollResult {
        try confirm(target, "scrollIntoView")
        return ScrollResult(accepted: true, states: ["showing"], inView: true)
    }

    func insertText(_ target: ResolvedTarget, value: String, at offset: Int?) async throws(AccessibilityError) -> SetTextResult {
        try confirm(target, "insertText")
        let text = state.withLock { state in
            state.elements[target.element!.ref]?.text += value
            return state.elements[target.element!.ref]?.text ?? ""
        }
        return SetTextResult(accepted: true, matches: true, length: text.count)
    }

    func waitFor(_ target: ResolvedTarget, query: ElementQuery, gone: Bool, timeout: Duration) async throws(AccessibilityError)
        -> WaitResult { throw .notSupported("the fake desktop has no trees") }

    func diagnose(where include: @Sendable (AppTarget) -> Bool) async -> AccessibilityDiagnosis {
        AccessibilityDiagnosis(isEnabled: true, screenReaderEnabled: false, enabledByDaemon: false,
                               apps: [app, other].filter(include).map {
                                   AppDiagnosis(app: $0, toolkit: "fake", nodes: 40, contentNodes: 38, responding: true, webDocuments: 0,
                                                webDocumentsWithContent: 0)
                               }, hiddenProcesses: [])
    }

    func navigate(_ target: ResolvedTarget, url: String) async throws(AccessibilityError) -> NavigateResult {
        let (url, origin) = try BrowserLaunch.checked(url: url)
        try confirm(target, "navigate")
        return NavigateResult(url: url, origin: origin, browser: "firefox")
    }

    func subscribe(_ kinds: Set<AccessibilityEvent.Kind>, handler: @escaping @Sendable (AccessibilityEvent) -> Void)
        async throws(AccessibilityError) -> SubscriptionID
    {
        state.withLock { $0.handlers.append(handler) }
        return SubscriptionID(value: 1)
    }

    func unsubscribe(_ id: SubscriptionID) async {}
}
