import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing

/// Random policies and requests from a seeded generator, so failures reproduce.
struct PolicyGenerator {
    var random: SeededGenerator
    static let apps = ["ledger", "mousepad", "calc", "notes"]
    static let exes = ["/usr/bin/python3", "/usr/local/bin/agent", "/usr/bin/perl"]
    static let names = ["Amount", "Total", "Submit"]
    static let methods: [(String, RiskClass)] = [("tree.snapshot", .observe), ("text.read", .read), ("element.activate", .act),
                                                 ("text.set", .write), ("field.fill", .write), ("audit.query", .admin)]

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    mutating func pick<T>(_ items: [T]) -> T { items.randomElement(using: &random)! }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }

    /// One rule's TOML lines, without an id (ids are added so shuffling keeps them).
    mutating func ruleBody(effects: [String] = ["allow", "ask", "deny"]) -> String {
        var lines = ["effect = \"\(pick(effects))\""]
        var actions: [String] = []
        for _ in 0..<Int.random(in: 1...2, using: &random) {
            actions.append(chance(50) ? pick(RiskClass.allCases.filter { $0 != .control && $0 != .secret }).rawValue : pick(Self.methods).0)
        }
        if chance(10) { actions = ["*"] }
        lines.append("actions = [\(actions.map { "\"\($0)\"" }.joined(separator: ", "))]")
        if chance(40) {
            lines.append("client_exe = \"\(pick(Self.exes))\"")
        } else if chance(20) {
            lines.append("client_exe = \"/usr/*\"")
        }
        if chance(50) { lines.append(chance(70) ? "app = \"\(pick(Self.apps))\"" : "app = \"\(pick(Self.apps).prefix(2))*\"") }
        if chance(20) { lines.append("app_exe = \"/usr/bin/\(pick(Self.apps))\"") }
        if chance(25) { lines.append("name = \"\(pick(Self.names))\"") }
        if lines.count == 2 { lines.append("app = \"\(pick(Self.apps))\"") }  // no catch-all rules: keep the sample varied
        return lines.joined(separator: "\n")
    }

    mutating func request() -> BrokerRequest {
        let (method, riskClass) = pick(Self.methods)
        let app = pick(Self.apps)
        let identity = ClientIdentity(uid: 1000, pid: 4000, exe: pick(Self.exes), connectionID: 1, origin: TestOrigins.client)
        let target = riskClass == .admin ? nil
            : TargetInfo(appName: app, appExe: "/usr/bin/\(app)", appPid: 3000, role: chance(50) ? "text" : nil,
                         name: chance(70) ? pick(Self.names) : nil)
        return BrokerRequest(client: identity, method: method, riskClass: riskClass, target: target)
    }
}

@Suite("Decision properties")
struct PropertyTests {
    func document(_ rules: [(id: String, body: String)], header: String = "") -> String {
        header + rules.map { "[[rule]]\nid = \"\($0.id)\"\n\($0.body)\n" }.joined(separator: "\n")
    }

    func decisions(_ broker: Broker, _ requests: [BrokerRequest]) -> [String] {
        requests.map { request in
            let decision = broker.check(request)
            return "\(decision.effect.rawValue)/\(decision.reason?.rawValue ?? "-")/\(decision.ruleID ?? "-")"
        }
    }

    @Test("shuffling rules within and across files never changes a decision", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func shuffleInvariant(seed: UInt64) throws {
        var generator = PolicyGenerator(seed: seed * 7919)
        let adminRules = (0..<15).map { (id: "a\($0)", body: generator.ruleBody()) }
        let userRules = (0..<40).map { (id: "u\($0)", body: generator.ruleBody()) }
        let requests = (0..<300).map { _ in generator.request() }

        let sandbox = Sandbox()
        sandbox.writeAdmin("10-a.toml", document(Array(adminRules[..<7])))
        sandbox.writeAdmin("20-b.toml", document(Array(adminRules[7...])))
        sandbox.writeUser(document(userRules))
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("deny")))
        let expected = decisions(broker, requests)
        #expect(Set(expected.map { $0.prefix(while: { $0 != "/" }) }).count == 3, "the sample should produce allow, ask and deny")

        for _ in 0..<5 {
            var shuffledAdmin = adminRules
            shuffledAdmin.shuffle(using: &generator.random)
            let split = Int.random(in: 0...shuffledAdmin.count, using: &generator.random)
            try FileManager.default.removeItem(atPath: sandbox.adminDir)
            try FileManager.default.createDirectory(atPath: sandbox.adminDir, withIntermediateDirectories: true)
            sandbox.writeAdmin("50-x.toml", document(Array(shuffledAdmin[..<split])))
            sandbox.writeAdmin("05-y.toml", document(Array(shuffledAdmin[split...])))
            sandbox.writeUser(document(userRules.shuffled(using: &generator.random)))
            broker.reload()
            #expect(broker.policyStatus.ok)
            #expect(decisions(broker, requests) == expected)
        }
    }

    @Test("a matching deny always beats any number of allows and asks", arguments: [11, 12, 13] as [UInt64])
    func denyBeatsAllow(seed: UInt64) throws {
        var generator = PolicyGenerator(seed: seed)
        let rules = (0..<30).map { (id: "r\($0)", body: generator.ruleBody(effects: ["allow", "ask"])) }
        let sandbox = Sandbox()
        for request in (0..<100).map({ _ in generator.request() }) {
            let deny = """
                effect = "deny"
                actions = ["\(request.method)"]
                client_exe = "\(request.client.exe)"
                \(request.target?.appName.map { "app = \"\($0)\"" } ?? "")
                """
            sandbox.writeUser(document(rules + [(id: "zz-deny", body: deny)]) + "\n[[rule]]\nid = \"all\"\neffect = \"allow\"\nactions = [\"*\"]\n")
            let broker = makeBroker(sandbox)
            let decision = broker.check(request)
            #expect(decision.effect == .deny)
            #expect(decision.reason == .policy)
            #expect(decision.ruleID == "zz-deny")
        }
    }

    @Test("when no rule matches, the default decides (ask, or deny when any layer says so)")
    func noRuleMeansDefault() async throws {
        var generator = PolicyGenerator(seed: 99)
        let requests = (0..<100).map { _ in generator.request() }
        // Rules that can never match these requests.
        let unrelated = "[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\napp = \"no-such-app\"\n"
        for (admin, user, expected) in [(nil, nil, "ask"), (nil, "ask", "ask"), (nil, "deny", "deny"), ("ask", "deny", "deny"),
                                        ("deny", "ask", "deny")] as [(String?, String?, String)] {
            let sandbox = Sandbox()
            if let admin { sandbox.writeAdmin("a.toml", "default = \"\(admin)\"\n" + unrelated) }
            sandbox.writeUser((user.map { "default = \"\($0)\"\n" } ?? "") + unrelated)
            let broker = makeBroker(sandbox)
            try broker.registerHelper(FakeHelper(behavior: .answer("deny")))
            for request in requests {
                let decision = broker.check(request)
                #expect(decision.effect.rawValue == expected)
                #expect(decision.ruleID == nil)
                if expected == "deny" { #expect(decision.reason == (admin == "deny" ? .lockedDown : .policy)) }
            }
        }
    }

    static let brokenFiles = [
        "[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\nbogus = 1\n",
        "[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\napp = \"[unclosed\"\n",
        "[[rule]]\neffect = \"allow\"\nactions = \"observe\"\n",
        "[[rule]\neffect = \"allow\"\n",
        "\u{FF}garbage",
    ]

    @Test("an unparsable file in either layer denies everything with policy_error", arguments: brokenFiles)
    func unparsableDeniesAll(_ broken: String) async throws {
        var generator = PolicyGenerator(seed: 5)
        let requests = (0..<100).map { _ in generator.request() }
        for layer in [PolicyLayer.admin, .user] {
            let sandbox = Sandbox()
            sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
            if layer == .admin { sandbox.writeAdmin("bad.toml", broken) } else { sandbox.writeUser(broken) }
            let broker = makeBroker(sandbox)
            #expect(!broker.policyStatus.ok)
            #expect(broker.status["policy"]?["ok"] == false)
            for request in requests {
                let decision = await broker.decide(request)
                #expect(decision.effect == .deny)
                #expect(decision.reason == .policyError)
                #expect(decision.message.contains("bad.toml") || decision.message.contains("policy.toml"))
            }
            // Fixing the file and reloading restores service.
            if layer == .admin { sandbox.writeAdmin("bad.toml", "") } else { sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n") }
            broker.reload()
            #expect(broker.policyStatus.ok)
            #expect(broker.check(requests[0]).effect == .allow)
        }
    }
}
