import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing

/// The `secret` class (`field.fill_secret`): what may allow it, and what never does.
@Suite("The secret class: a keyring secret is filled only by a rule naming it, or a person each time")
struct SecretClassTests {
    static let login = "Example login"
    static let agentExe = "/usr/bin/agent"

    /// A fill of the keyring item `item` into ledger's password field (in a browser page at `origin`).
    func fill(_ item: String = SecretClassTests.login, client: ClientIdentity = client(exe: SecretClassTests.agentExe),
              appExe: String = "/usr/bin/ledger", origin: String? = nil) -> BrokerRequest {
        var request = request(FieldFillSecret.name, client: client, appExe: appExe, role: "password text", name: "Password",
                              origin: origin)
        request.target?.secretItem = item
        return request
    }

    static func secretRule(_ extra: String = "", item: String = login, clientExe: String = agentExe,
                           appExe: String = "/usr/bin/ledger", actions: String = "[\"secret\"]") -> String {
        """
        [[rule]]
        id = "login"
        effect = "allow"
        actions = \(actions)
        secret_item = "\(item)"
        client_exe = "\(clientExe)"
        app_exe = "\(appExe)"
        \(extra)
        """
    }

    @Test("allow * (and allow write) never covers a secret: with no helper it is denied, with one the person is asked")
    func starNeverCovers() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\nid = \"all\"\neffect = \"allow\"\nactions = [\"*\"]\n[[rule]]\nid = \"w\"\neffect = \"allow\"\nactions = [\"write\", \"act\"]\n")
        let broker = makeBroker(sandbox)
        #expect(await broker.decide(request("field.fill", role: "password text", name: "Password")).effect == .allow)
        let alone = await broker.decide(fill())
        #expect(alone.effect == .deny && alone.reason == .noHelper, "\(alone.message)")
        #expect(broker.check(fill()).effect != .allow)
        let helper = FakeHelper(behavior: .answer("deny"))
        try broker.registerHelper(helper)
        _ = await broker.decide(fill())
        #expect(helper.callCount == 1)
    }

    @Test("a prompt for a secret offers only deny and allow_once; an answer of allow_always is refused and nothing is remembered")
    func promptOffersOnlyOnce() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .script(["allow_once", "allow_always", "allow_once"]))
        try broker.registerHelper(helper)
        let once = await broker.decide(fill())
        #expect(once.effect == .allow && once.choice == "allow_once" && once.grantID == nil)
        #expect(helper.prompts.first?["choices"] == ["deny", "allow_once"])
        #expect(helper.prompts.first?["action"]?["class"] == "secret")
        #expect(helper.prompts.first?["target"]?["secret_item"] == .string(Self.login))
        // A helper that answers a choice it was not offered: denied.
        let always = await broker.decide(fill())
        #expect(always.effect == .deny, "\(always.message)")
        // Asked again each time: the earlier allow_once left nothing behind.
        _ = await broker.decide(fill())
        #expect(helper.callCount == 3)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("a rule naming the item, the client and the app exactly allows it without asking; any other item, client or app is asked")
    func exactRuleAllows() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.secretRule())
        let broker = makeBroker(sandbox)
        #expect(broker.policyStatus.errors.isEmpty, "\(broker.policyStatus.errors)")
        let allowed = await broker.decide(fill())
        #expect(allowed.effect == .allow && allowed.ruleID == "login" && !allowed.prompted, "\(allowed.message)")
        for other in [fill("Bank login"), fill(client: client(exe: "/usr/bin/other-agent")), fill(appExe: "/usr/bin/other")] {
            let decision = await broker.decide(other)
            #expect(decision.effect == .deny && decision.reason == .noHelper, "\(decision.message)")
        }
        // The method's name is as good as the class's.
        sandbox.writeUser(Self.secretRule(actions: "[\"field.fill_secret\"]"))
        let byMethod = makeBroker(sandbox)
        #expect(await byMethod.decide(fill()).effect == .allow)
    }

    @Test("in a browser, a rule allows a secret only into the web origin it names (a phishing page in the same browser is asked)")
    func browserOriginPinned() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.secretRule(appExe: "/usr/lib/firefox-esr/firefox-esr"))
        let withoutOrigin = makeBroker(sandbox)
        let page = fill(appExe: "/usr/lib/firefox-esr/firefox-esr", origin: "https://bank.example")
        #expect(await withoutOrigin.decide(page).reason == .noHelper, "a rule without origin must not cover a web page")
        sandbox.writeUser(Self.secretRule("origin = \"https://bank.example\"", appExe: "/usr/lib/firefox-esr/firefox-esr"))
        let pinned = makeBroker(sandbox)
        #expect(await pinned.decide(page).effect == .allow)
        let phishing = fill(appExe: "/usr/lib/firefox-esr/firefox-esr", origin: "https://bank.example.evil.test")
        #expect(await pinned.decide(phishing).reason == .noHelper)
    }

    @Test("a rule allowing secrets must name the item, an exact client_exe and an exact app_exe, and nothing but secrets; secret_item only on rules about secrets")
    func strictRules() {
        let cases: [(String, String)] = [
            ("[[rule]]\neffect = \"allow\"\nactions = [\"secret\"]\nclient_exe = \"/usr/bin/agent\"\napp_exe = \"/usr/bin/ledger\"\n", "secret_item"),
            (Self.secretRule(clientExe: "/usr/bin/*"), "client_exe"),
            (Self.secretRule(appExe: "/usr/bin/led*"), "app_exe"),
            ("[[rule]]\neffect = \"allow\"\nactions = [\"secret\"]\nsecret_item = \"x\"\napp_exe = \"/usr/bin/ledger\"\n", "client_exe"),
            (Self.secretRule(actions: "[\"secret\", \"write\"]"), "names only"),
            ("[[rule]]\neffect = \"deny\"\nactions = [\"write\"]\nsecret_item = \"x\"\n", "applies only"),
        ]
        for (text, expected) in cases {
            let sandbox = Sandbox()
            sandbox.writeUser(text)
            let errors = makeBroker(sandbox).policyStatus.errors.joined(separator: "\n")
            #expect(errors.contains(expected), "\(text)\n→ \(errors)")
        }
    }

    @Test("deny and ask rules about secrets work as usual; an admin deny is final; default = deny denies")
    func denyAndAsk() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.secretRule())
        sandbox.writeAdmin("10-secrets.toml", "[[rule]]\nid = \"no-secrets\"\neffect = \"deny\"\nactions = [\"secret\"]\n")
        let locked = makeBroker(sandbox)
        let denied = await locked.decide(fill())
        #expect(denied.effect == .deny && denied.reason == .lockedDown && denied.ruleID == "no-secrets")

        let other = Sandbox()
        other.writeUser("default = \"deny\"\n")
        #expect(await makeBroker(other).decide(fill()).effect == .deny)
    }

    @Test("a task never covers a secret: its scope cannot name one, and a fill inside an approved task's app still asks")
    func tasksNeverCover() async throws {
        for action in ["secret", "field.fill_secret"] {
            #expect(throws: RPCError.self) {
                try TaskScopeEntry(json: ["actions": [.string(action)], "app_exe": "/usr/bin/ledger"], field: "scope.0")
            }
        }
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .script(["approve_task", "deny"]))
        try broker.registerHelper(helper)
        let agent = client(exe: Self.agentExe)
        _ = try await broker.beginTask(
            TaskRequest(title: "Log in", scope: [try TaskScopeEntry(json: ["actions": ["write", "act"], "app_exe": "/usr/bin/ledger"], field: "scope.0")],
                        expiresIn: .seconds(600), idle: nil, maxActions: nil),
            client: agent)
        let decision = await broker.decide(fill(client: agent))
        #expect(decision.taskID == nil && decision.prompted && decision.reason == .userDenied, "\(decision.message)")
    }

    @Test("a pause and a locked screen stop secrets too")
    func pauseStopsSecrets() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.secretRule())
        let broker = makeBroker(sandbox)
        _ = broker.pause(by: client(), reason: nil)
        #expect(await broker.decide(fill()).reason == .paused)
        let unpaused = makeBroker(Sandbox())
        unpaused.setSessionLocked(true)
        #expect(await unpaused.decide(fill()).reason == .sessionLocked)
    }
}
