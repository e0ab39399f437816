import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing

/// One row: a request, when it is made, and the expected answer of `broker.check`.
struct MatrixRow: Sendable, CustomTestStringConvertible {
    var name: String
    var method: String
    var exe: String = TestIDs.python
    var script: String?
    var app: String?
    var appExe: String?
    var role: String?
    var element: String?
    var interactive = true
    /// Seconds after the policy's reference time.
    var at: TimeInterval = 0
    var effect: Decision.Effect
    var reason: DenyReason?
    var rule: String?

    var testDescription: String { name }

    func request() -> BrokerRequest {
        let identity = ClientIdentity(uid: 1000, pid: 4242, exe: exe, script: script, label: "claims to be trusted", connectionID: 1,
                                      origin: TestOrigins.client)
        let riskClass = DeskgateAPI.descriptor(named: method)!.riskClass!
        let target: TargetInfo? = app == nil && appExe == nil && role == nil && element == nil ? nil
            : TargetInfo(appName: app, appExe: appExe ?? app.map { "/usr/bin/\($0)" }, appPid: 3000, role: role, name: element)
        return BrokerRequest(client: identity, method: method, riskClass: riskClass, target: target, interactive: interactive)
    }
}

@Suite("Decision matrix")
struct DecisionMatrixTests {
    static let reference = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z
    static let notesExpiry = "2027-01-15T09:00:00Z"  // reference + 3600

    static let adminPolicy = """
        sensitive_apps = ["Vault*"]

        [[rule]]
        id = "no-bank"
        effect = "deny"
        actions = ["*"]
        app = "bank*"
        reason = "finance apps are off limits"

        [[rule]]
        id = "no-terminal-write"
        effect = "deny"
        actions = ["write", "act"]
        app_exe = "/usr/bin/xterm"

        [[rule]]
        id = "admin-ask-delete"
        effect = "ask"
        actions = ["element.activate"]
        name = "Delete*"

        [[rule]]
        id = "admin-allow-observe-calc"
        effect = "allow"
        actions = ["observe"]
        app = "calc"
        """

    static let userPolicy = """
        [[rule]]
        id = "bank-allow"
        effect = "allow"
        actions = ["*"]
        app = "bank"

        [[rule]]
        id = "ledger-observe"
        effect = "allow"
        actions = ["observe"]
        app = "ledger"

        [[rule]]
        id = "ledger-read"
        effect = "allow"
        actions = ["text.read"]
        app = "ledger"
        client_exe = "/usr/bin/python3*"

        [[rule]]
        id = "ledger-fill"
        effect = "allow"
        actions = ["field.fill"]
        app_exe = "/usr/bin/ledger"
        client_exe = "/usr/bin/python3"
        client_script = "/home/u/fill.py"
        name = "Amount"

        [[rule]]
        id = "ledger-no-total"
        effect = "deny"
        actions = ["write"]
        app = "ledger"
        name = "Total"

        [[rule]]
        id = "submit"
        effect = "allow"
        actions = ["element.activate"]
        app = "ledger"
        role = "push button"
        name = "Submit"

        [[rule]]
        id = "agent-writes-ask"
        effect = "ask"
        actions = ["write"]
        client_exe = "/usr/local/bin/agent"

        [[rule]]
        id = "agent-all"
        effect = "allow"
        actions = ["*"]
        client_exe = "/usr/local/bin/agent"

        [[rule]]
        id = "notes-until"
        effect = "allow"
        actions = ["observe"]
        app = "notes"
        expires = \(notesExpiry)

        [[rule]]
        id = "calc-deny-user"
        effect = "deny"
        actions = ["observe"]
        app = "calc"

        [[rule]]
        id = "xterm-allow"
        effect = "allow"
        actions = ["act", "write"]
        app_exe = "/usr/bin/xterm"

        [[rule]]
        id = "mousepad-all"
        effect = "allow"
        actions = ["*"]
        app_exe = "/usr/bin/mousepad"

        [[rule]]
        id = "admin-methods"
        effect = "allow"
        actions = ["admin"]
        client_exe = "/usr/bin/deskgate"
        """

    static let rows: [MatrixRow] = [
        MatrixRow(name: "observe allowed by app rule", method: "tree.snapshot", app: "ledger", effect: .allow, rule: "ledger-observe"),
        MatrixRow(name: "elements.find is observe", method: "elements.find", app: "ledger", effect: .allow, rule: "ledger-observe"),
        MatrixRow(name: "element.get is observe", method: "element.get", app: "ledger", role: "text", element: "Amount", effect: .allow, rule: "ledger-observe"),
        MatrixRow(name: "read by method name and client glob", method: "text.read", app: "ledger", role: "text", element: "Notes", effect: .allow, rule: "ledger-read"),
        MatrixRow(name: "client glob matches versioned python", method: "text.read", exe: "/usr/bin/python3.11", app: "ledger", effect: .allow, rule: "ledger-read"),
        MatrixRow(name: "other client falls to default ask", method: "text.read", exe: "/usr/bin/perl", app: "ledger", effect: .ask),
        MatrixRow(name: "fill allowed for exact exe, script, app exe and field", method: "field.fill", script: "/home/u/fill.py", app: "ledger", role: "text", element: "Amount", effect: .allow, rule: "ledger-fill"),
        MatrixRow(name: "fill without the script is not covered", method: "field.fill", app: "ledger", role: "text", element: "Amount", effect: .ask),
        MatrixRow(name: "fill from another script is not covered", method: "field.fill", script: "/tmp/evil.py", app: "ledger", element: "Amount", effect: .ask),
        MatrixRow(name: "fill of another field is not covered", method: "field.fill", script: "/home/u/fill.py", app: "ledger", element: "Amount2", effect: .ask),
        MatrixRow(name: "fill by python3.11 is not the exact exe", method: "field.fill", exe: "/usr/bin/python3.11", script: "/home/u/fill.py", app: "ledger", element: "Amount", effect: .ask),
        MatrixRow(name: "fill of an app with a spoofed name but another exe", method: "field.fill", script: "/home/u/fill.py", app: "ledger", appExe: "/usr/bin/evil", element: "Amount", effect: .ask),
        MatrixRow(name: "user deny on field by name", method: "field.fill", script: "/home/u/fill.py", app: "ledger", element: "Total", effect: .deny, reason: .policy, rule: "ledger-no-total"),
        MatrixRow(name: "user deny covers text.set via class", method: "text.set", app: "ledger", role: "text", element: "Total", effect: .deny, reason: .policy, rule: "ledger-no-total"),
        MatrixRow(name: "user deny does not cover reading", method: "text.read", app: "ledger", element: "Total", effect: .allow, rule: "ledger-read"),
        MatrixRow(name: "activate allowed for role and name", method: "element.activate", app: "ledger", role: "push button", element: "Submit", effect: .allow, rule: "submit"),
        MatrixRow(name: "role must match exactly", method: "element.activate", app: "ledger", role: "toggle button", element: "Submit", effect: .ask),
        MatrixRow(name: "name glob is case-sensitive", method: "element.activate", app: "ledger", role: "push button", element: "submit", effect: .ask),
        MatrixRow(name: "rule with role needs an element", method: "element.activate", app: "ledger", effect: .ask),
        MatrixRow(name: "admin ask beats user allow", method: "element.activate", app: "mousepad", role: "push button", element: "Delete all", effect: .ask, rule: "admin-ask-delete"),
        MatrixRow(name: "admin deny on app glob", method: "tree.snapshot", app: "bank", effect: .deny, reason: .lockedDown, rule: "no-bank"),
        MatrixRow(name: "admin deny beats user allow-all", method: "text.set", app: "bank-online", effect: .deny, reason: .lockedDown, rule: "no-bank"),
        MatrixRow(name: "admin deny on app exe", method: "text.set", app: "Terminal", appExe: "/usr/bin/xterm", effect: .deny, reason: .lockedDown, rule: "no-terminal-write"),
        MatrixRow(name: "admin deny on act class", method: "element.focus", app: "Terminal", appExe: "/usr/bin/xterm", effect: .deny, reason: .lockedDown, rule: "no-terminal-write"),
        MatrixRow(name: "admin deny leaves other classes alone", method: "tree.snapshot", app: "Terminal", appExe: "/usr/bin/xterm", effect: .ask),
        MatrixRow(name: "user deny beats admin allow", method: "tree.snapshot", app: "calc", effect: .deny, reason: .policy, rule: "calc-deny-user"),
        MatrixRow(name: "admin allow covers only its class", method: "text.read", app: "calc", effect: .ask),
        MatrixRow(name: "ask rule beats allow rule", method: "text.set", exe: "/usr/local/bin/agent", app: "ledger", element: "Notes", effect: .ask, rule: "agent-writes-ask"),
        MatrixRow(name: "deny rule beats ask rule", method: "text.set", exe: "/usr/local/bin/agent", app: "ledger", element: "Total", effect: .deny, reason: .policy, rule: "ledger-no-total"),
        MatrixRow(name: "allow-all client rule, observe", method: "tree.snapshot", exe: "/usr/local/bin/agent", app: "gedit", effect: .allow, rule: "agent-all"),
        MatrixRow(name: "allow-all client rule, act", method: "element.activate", exe: "/usr/local/bin/agent", app: "gedit", role: "push button", element: "OK", effect: .allow, rule: "agent-all"),
        MatrixRow(name: "allow-all client rule, admin methods", method: "audit.query", exe: "/usr/local/bin/agent", effect: .allow, rule: "agent-all"),
        MatrixRow(name: "rule before its expiry", method: "tree.snapshot", app: "notes", at: 3599, effect: .allow, rule: "notes-until"),
        MatrixRow(name: "rule exactly at its expiry is dead", method: "tree.snapshot", app: "notes", at: 3600, effect: .ask),
        MatrixRow(name: "rule after its expiry", method: "tree.snapshot", app: "notes", at: 86400, effect: .ask),
        MatrixRow(name: "app exe rule allows writes", method: "text.set", app: "Mousepad", appExe: "/usr/bin/mousepad", role: "text", element: "doc", effect: .allow, rule: "mousepad-all"),
        MatrixRow(name: "value.set is write", method: "value.set", app: "Mousepad", appExe: "/usr/bin/mousepad", role: "slider", effect: .allow, rule: "mousepad-all"),
        MatrixRow(name: "app named mousepad with another exe", method: "text.set", app: "mousepad", appExe: "/tmp/mousepad", effect: .ask),
        MatrixRow(name: "app name rule trusts the app's chosen name", method: "tree.snapshot", app: "ledger", appExe: "/usr/bin/evil", effect: .allow, rule: "ledger-observe"),
        MatrixRow(name: "sensitive app from admin list", method: "tree.snapshot", exe: "/usr/local/bin/agent", app: "Vault 3", effect: .deny, reason: .hardDeny),
        MatrixRow(name: "built-in sensitive app by name", method: "tree.snapshot", exe: "/usr/local/bin/agent", app: "KeePassXC", appExe: "/opt/kp", effect: .deny, reason: .hardDeny),
        MatrixRow(name: "built-in sensitive app by exe despite innocent name", method: "tree.snapshot", exe: "/usr/local/bin/agent", app: "Notes", appExe: "/usr/bin/keepassxc", effect: .deny, reason: .hardDeny),
        MatrixRow(name: "polkit agent is sensitive", method: "element.activate", exe: "/usr/local/bin/agent", app: "Authenticate", appExe: "/usr/lib/polkit-gnome/polkit-gnome-authentication-agent-1", effect: .deny, reason: .hardDeny),
        MatrixRow(name: "password text never read", method: "text.read", app: "ledger", role: "password text", element: "PIN", effect: .deny, reason: .hardDeny),
        MatrixRow(name: "password text never read even under allow-all", method: "text.read", exe: "/usr/local/bin/agent", app: "gedit", role: "password text", effect: .deny, reason: .hardDeny),
        MatrixRow(name: "admin class by the CLI", method: "grants.list", exe: "/usr/bin/deskgate", effect: .allow, rule: "admin-methods"),
        MatrixRow(name: "admin class by others asks", method: "audit.query", effect: .ask),
        MatrixRow(name: "untargeted observe asks", method: "apps.list", effect: .ask),
        MatrixRow(name: "non-interactive ask becomes would_prompt", method: "text.read", exe: "/usr/bin/perl", app: "ledger", interactive: false, effect: .deny, reason: .wouldPrompt),
        MatrixRow(name: "non-interactive explicit ask names its rule", method: "text.set", exe: "/usr/local/bin/agent", app: "ledger", element: "Notes", interactive: false, effect: .deny, reason: .wouldPrompt, rule: "agent-writes-ask"),
        MatrixRow(name: "non-interactive allow is allowed", method: "tree.snapshot", app: "ledger", interactive: false, effect: .allow, rule: "ledger-observe"),
        MatrixRow(name: "unidentified client is denied even where a rule without client_exe allows", method: "tree.snapshot", exe: "", app: "ledger", effect: .deny, reason: .unidentified),
        MatrixRow(name: "unidentified client is denied where others would be asked", method: "text.read", exe: "", app: "ledger", effect: .deny, reason: .unidentified),
        MatrixRow(name: "unidentified client is denied admin methods", method: "grants.list", exe: "", effect: .deny, reason: .unidentified),
        MatrixRow(name: "advisory label is never matched", method: "element.focus", app: "ledger", effect: .ask),
    ]

    @Test("check() answers every row", arguments: rows)
    func row(_ row: MatrixRow) throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("10-site.toml", Self.adminPolicy)
        sandbox.writeUser(Self.userPolicy)
        let clock = TestClock(Self.reference.addingTimeInterval(row.at))
        let broker = makeBroker(sandbox, clock: clock)
        #expect(broker.policyStatus.ok, "\(broker.policyStatus.errors)")
        try broker.registerHelper(FakeHelper(behavior: .answer("deny")))

        let decision = broker.check(row.request())
        #expect(decision.effect == row.effect, "\(decision.message)")
        #expect(decision.reason == row.reason, "\(decision.message)")
        #expect(decision.ruleID == row.rule, "\(decision.message)")
        #expect(decision.riskClass == row.request().riskClass)
        if decision.effect == .deny {
            let error = try #require(decision.rpcError)
            #expect(error.code == .denied)
            #expect(error.data?["reason"]?.stringValue == row.reason?.rawValue)
            #expect(error.data?["class"]?.stringValue == decision.riskClass.rawValue)
            #expect(error.data?["rule"]?.stringValue == row.rule)
            #expect(error.message.hasPrefix("Denied"))
        } else {
            #expect(decision.rpcError == nil)
        }
    }

    @Test("the matrix has at least 40 rows with allows and denies")
    func size() {
        #expect(Self.rows.count >= 40)
        #expect(Self.rows.contains { $0.effect == .allow })
        #expect(Self.rows.contains { $0.effect == .deny })
        #expect(Self.rows.contains { $0.effect == .ask })
    }

    @Test("decide() agrees with check() on non-prompting rows")
    func decideAgrees() async throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("10-site.toml", Self.adminPolicy)
        sandbox.writeUser(Self.userPolicy)
        let clock = TestClock(Self.reference)
        let broker = makeBroker(sandbox, clock: clock)
        let helper = FakeHelper(behavior: .answer("deny"))
        try broker.registerHelper(helper)
        for row in Self.rows where row.effect != .ask {
            clock.set(Self.reference.addingTimeInterval(row.at))
            let decision = await broker.decide(row.request())
            #expect(decision.effect == row.effect, "\(row.name)")
            #expect(decision.reason == row.reason, "\(row.name)")
            #expect(decision.ruleID == row.rule, "\(row.name)")
        }
        #expect(helper.callCount == 0)
    }
}
