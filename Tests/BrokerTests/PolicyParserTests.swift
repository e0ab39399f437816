import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing

@Suite("Globs")
struct GlobTests {
    static let cases: [(String, String, Bool)] = [
        ("/usr/bin/python3*", "/usr/bin/python3", true),
        ("/usr/bin/python3*", "/usr/bin/python3.11", true),
        ("/usr/bin/python3*", "/usr/bin/python2", false),
        ("*", "", true),
        ("*", "/any/path/at/all", true),
        ("/usr/*/mousepad", "/usr/local/bin/mousepad", true),  // * crosses /
        ("ledger", "Ledger", false),  // case-sensitive
        ("ledger", "ledger", true),
        ("ledger", "ledger ", false),
        ("led?er", "ledger", true),
        ("led?er", "leder", false),
        ("[Ll]edger", "Ledger", true),
        ("[!L]edger", "Ledger", false),
        ("[^L]edger", "ledger", true),
        ("file[0-9]", "file7", true),
        ("file[0-9]", "filex", false),
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
        ("[]]", "]", true),
        ("*.txt", "notes.txt.bak", false),
        ("*a*a*a*a*b", String(repeating: "a", count: 200), false),
        ("é*", "été", true),
        ("?", "é", true),
        ("Sub*mit", "Submit", true),
    ]

    @Test("matching", arguments: cases)
    func matching(_ pattern: String, _ text: String, _ expected: Bool) throws {
        #expect(try Glob(pattern).matches(text) == expected)
    }

    @Test("malformed patterns are rejected", arguments: ["[abc", "abc\\", "[]", "[z-a]", "x[!]"])
    func malformed(_ pattern: String) {
        #expect(throws: Glob.SyntaxError.self) { try Glob(pattern) }
    }

    @Test("literal patterns are recognised for indexing")
    func literal() throws {
        #expect(try Glob("mousepad").literal == "mousepad")
        #expect(try Glob("mouse\\*pad").literal == "mouse*pad")
        #expect(try Glob("mouse*").literal == nil)
    }
}

@Suite("Policy files")
struct PolicyParserTests {
    func parse(_ text: String, path: String = "/etc/deskgate/policy.d/10-site.toml") throws(TOMLError) -> PolicyFile {
        try PolicyParser.parse(Array(text.utf8), path: path, layer: .admin)
    }

    @Test("every rule field is parsed")
    func fullRule() throws {
        let file = try parse("""
            default = "deny"
            prompt_agents = ["/usr/local/bin/my-prompt"]
            sensitive_apps = ["Vault*"]
            [audit]
            retention_days = 60
            max_bytes = 10485760

            [[rule]]
            id = "ledger-write"
            effect = "allow"
            actions = ["observe", "text.set"]
            client_exe = "/usr/bin/python3*"
            client_script = "/home/*/fill.py"
            app = "ledger*"
            app_exe = "/usr/bin/ledger"
            role = "text"
            name = "Amount"
            expires = 2026-12-31T00:00:00Z
            reason = "monthly import"

            [[rule]]
            effect = "deny"
            actions = ["*"]
            """)
        #expect(file.defaultEffect == .deny)
        #expect(file.promptHelpers == ["/usr/local/bin/my-prompt"])
        #expect(file.sensitiveApps.map(\.pattern) == ["Vault*"])
        #expect(file.audit == AuditPolicy(retentionDays: 60, maxBytes: 10_485_760))
        #expect(file.sha256.count == 64)
        #expect(file.rules.count == 2)
        let rule = file.rules[0]
        #expect(rule.id == "ledger-write")
        #expect(rule.line == 8)
        #expect(rule.layer == .admin)
        #expect(rule.effect == .allow)
        #expect(rule.actionClasses == [.observe])
        #expect(rule.actionMethods == ["text.set"])
        #expect(rule.clientExe?.pattern == "/usr/bin/python3*")
        #expect(rule.clientScript?.pattern == "/home/*/fill.py")
        #expect(rule.app?.pattern == "ledger*")
        #expect(rule.appExe?.pattern == "/usr/bin/ledger")
        #expect(rule.role == "text")
        #expect(rule.name?.pattern == "Amount")
        #expect(rule.expires == Date(timeIntervalSince1970: 1_798_675_200))
        #expect(rule.reason == "monthly import")
        #expect(file.rules[1].id == "10-site.toml#2")
        #expect(file.rules[1].allActions)
    }

    static let rejections: [(String, Int, String)] = [
        ("defualt = \"ask\"", 1, "unknown key 'defualt'"),
        ("effect = \"allow\"", 1, "rule fields go inside a [[rule]]"),
        ("default = \"allow\"", 1, "must be \"ask\" or \"deny\""),
        ("default = 1", 1, "must be a string"),
        ("prompt_agents = \"/usr/bin/x\"", 1, "must be an array"),
        ("prompt_agents = [\"relative\"]", 1, "absolute"),
        ("sensitive_apps = [\"[oops\"]", 1, "bad glob"),
        ("[audit]\nretention = 5", 2, "unknown key 'retention'"),
        ("[audit]\nretention_days = \"7\"", 2, "must be an integer"),
        ("[audit]\nmax_bytes = 10", 2, "at least"),
        ("[rule]\neffect = \"allow\"", 1, "[[rule]]"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\napp = \"[x\"", 4, "bad glob"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\ncolour = \"red\"", 4, "unknown key 'colour'"),
        ("[[rule]]\neffect = \"maybe\"\nactions = [\"observe\"]", 2, "\"allow\", \"ask\" or \"deny\""),
        ("[[rule]]\nactions = [\"observe\"]", 1, "no 'effect'"),
        ("[[rule]]\neffect = \"allow\"", 1, "no 'actions'"),
        ("[[rule]]\neffect = \"allow\"\nactions = []", 3, "must not be empty"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"observe\", \"text.sett\"]", 3, "unknown action 'text.sett'"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"daemon.ping\"]", 3, "never gated"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"observe\", 3]", 3, "only strings"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\nexpires = \"2026-01-01\"", 4, "must be a date-time"),
        ("[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\nrole = 5", 4, "must be a string"),
        ("[[rule]]\nid = \"x\"\neffect = \"allow\"\nactions = [\"observe\"]\n[[rule]]\nid = \"x\"\neffect = \"deny\"\nactions = [\"read\"]", 5, "already used on line 1"),
    ]

    @Test("unknown keys, wrong types and bad globs reject the file with its line", arguments: rejections)
    func rejected(_ text: String, line: Int, fragment: String) {
        do {
            _ = try parse(text, path: "/tmp/p.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.file == "/tmp/p.toml")
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
        }
    }

    @Test("audit settings: admin wins, user may lengthen but never below 7 days or the admin's value")
    func auditLayering() throws {
        func settings(admin: String?, user: String?) throws -> AuditSettings {
            let sandbox = Sandbox()
            if let admin { sandbox.writeAdmin("a.toml", "[audit]\n" + admin) }
            if let user { sandbox.writeUser("[audit]\n" + user) }
            let broker = makeBroker(sandbox)
            #expect(broker.policyStatus.ok)
            return broker.auditSettings
        }
        #expect(try settings(admin: nil, user: nil) == AuditSettings(retentionDays: 30, maxBytes: nil))
        #expect(try settings(admin: nil, user: "retention_days = 3") == AuditSettings(retentionDays: 7))
        #expect(try settings(admin: nil, user: "retention_days = 400") == AuditSettings(retentionDays: 400))
        #expect(try settings(admin: "retention_days = 90", user: "retention_days = 10") == AuditSettings(retentionDays: 90))
        #expect(try settings(admin: "retention_days = 90", user: "retention_days = 120") == AuditSettings(retentionDays: 120))
        #expect(try settings(admin: "retention_days = 90", user: nil) == AuditSettings(retentionDays: 90))
        #expect(try settings(admin: "max_bytes = 4194304", user: "max_bytes = 2097152") == AuditSettings(retentionDays: 30, maxBytes: 4_194_304))
        #expect(try settings(admin: "max_bytes = 4194304", user: "max_bytes = 8388608") == AuditSettings(retentionDays: 30, maxBytes: 8_388_608))
    }
}
