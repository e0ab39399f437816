import Broker
import DeskgateAPI
import JSONRPC
import Testing

/// Rules and grants by web origin: in a browser every site has the same executable.
@Suite("Rules and grants by web origin")
struct OriginTests {
    static let firefox = "/usr/lib/firefox-esr/firefox-esr"

    func browserRequest(_ method: String, origin: String?, name: String = "Send") -> BrokerRequest {
        request(method, app: "Firefox", appExe: Self.firefox, role: "push button", name: name, origin: origin)
    }

    @Test("An origin rule matches the document's origin by glob; a request whose origin is unknown matches none")
    func originRules() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("""
            default = "deny"
            [[rule]]
            id = "bank-never"
            effect = "deny"
            actions = ["*"]
            origin = "https://*.bank.example"
            [[rule]]
            id = "local-pages"
            effect = "allow"
            actions = ["act", "observe"]
            app_exe = "/usr/lib/firefox-esr/firefox-esr"
            origin = "http://127.0.0.1:*"
            """)
        let broker = makeBroker(sandbox)
        let local = await broker.decide(browserRequest("element.activate", origin: "http://127.0.0.1:8123"))
        #expect(local.effect == .allow && local.ruleID == "local-pages")
        let bank = await broker.decide(browserRequest("element.activate", origin: "https://www.bank.example"))
        #expect(bank.effect == .deny && bank.ruleID == "bank-never")
        // Same executable, other site: the allow rule does not reach it.
        let other = await broker.decide(browserRequest("element.activate", origin: "https://evil.example"))
        #expect(other.effect == .deny && other.ruleID == nil)
        // No origin (not in a web document, or unreadable): no origin rule matches, either way.
        let unknown = await broker.decide(browserRequest("element.activate", origin: nil))
        #expect(unknown.effect == .deny && unknown.ruleID == nil)
        #expect(unknown.ruleID != "bank-never")
    }

    @Test("A remembered grant made on one origin does not cover another origin of the same browser")
    func grantsCarryTheOrigin() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("default = \"ask\"\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .script(["allow_always", "deny"]))
        try broker.registerHelper(helper)
        let first = await broker.decide(browserRequest("element.activate", origin: "http://127.0.0.1:8123"))
        #expect(first.effect == .allow && first.prompted)
        // The prompt showed the origin; the grant is keyed by it.
        #expect(helper.prompts.first?["target"]?["origin"] == "http://127.0.0.1:8123")
        let again = await broker.decide(browserRequest("element.activate", origin: "http://127.0.0.1:8123"))
        #expect(again.effect == .allow && !again.prompted)
        let elsewhere = await broker.decide(browserRequest("element.activate", origin: "https://bank.example"))
        #expect(elsewhere.prompted, "a grant for one site was used on another")
        #expect(elsewhere.effect == .deny)
        let listed = broker.listGrants()["grants"]?.arrayValue ?? []
        #expect(listed.first?["origin"] == "http://127.0.0.1:8123")
    }

    @Test("origin is a rule key the parser knows, and must be a string")
    func parsing() throws {
        let file = try PolicyParser.parse(Array("[[rule]]\neffect = \"allow\"\nactions = [\"act\"]\norigin = \"https://*.example\"\n".utf8),
                                          path: "p.toml", layer: .user)
        #expect(file.rules.first?.origin?.pattern == "https://*.example")
        #expect(throws: (any Error).self) {
            try PolicyParser.parse(Array("[[rule]]\neffect = \"allow\"\nactions = [\"act\"]\norigin = 3\n".utf8), path: "p.toml", layer: .user)
        }
    }
}
