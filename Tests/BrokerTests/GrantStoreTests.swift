import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Logging
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Grants file and hard denies")
struct GrantStoreTests {
    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as! NSNumber).intValue & 0o777
    }

    @Test("the grants file is 0600 in a 0700 directory, written atomically, no temp files left")
    func fileModes() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_always")))
        for i in 0..<5 { _ = await broker.decide(request("text.set", name: "f\(i)")) }
        await broker.flush()
        #expect(try mode(sandbox.grantsFile) == 0o600)
        let directory = (sandbox.grantsFile as NSString).deletingLastPathComponent
        #expect(try mode(directory) == 0o700)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["grants.json"])
        let json = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: sandbox.grantsFile))))
        #expect(json["version"]?.intValue == 1)
        #expect(json["grants"]?.arrayValue?.count == 5)
        #expect(json["grants"]?.arrayValue?.allSatisfy { $0["lifetime"]?.stringValue == "always" } == true)
    }

    @Test("concurrent grants and revocations leave the file equal to memory")
    func storeRaces() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_always")))
        // 40 clients (separate processes, so separate prompt queues) get grants while earlier ones are revoked.
        let ids = await withTaskGroup(of: String?.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let decision = await broker.decide(request("text.set", client: client(pid: Int32(10_000 + i), connection: UInt64(100 + i)), name: "f\(i)"))
                    if i % 2 == 0, let id = decision.grantID { _ = broker.revoke(id: id) }
                    return decision.grantID
                }
            }
            return await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
        }
        #expect(ids.count == 40)
        await broker.flush()
        let memory = Set(broker.listGrants()["grants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
        #expect(memory.count == 20)
        let file = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: sandbox.grantsFile))))
        let onDisk = Set(file["grants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
        #expect(onDisk == memory)
        let restarted = Set(makeBroker(sandbox).listGrants()["grants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
        #expect(restarted == memory)
    }

    @Test("a loose existing state directory is tightened to 0700")
    func tightensDirectory() async throws {
        let sandbox = Sandbox()
        let directory = (sandbox.grantsFile as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_always")))
        _ = await broker.decide(request("text.set"))
        await broker.flush()
        #expect(try mode(directory) == 0o700)
    }

    static let corruptFiles = [
        "{not json",
        "{\"version\": 2, \"grants\": []}",
        "{\"version\": 1, \"grants\": [{\"id\": \"g-1\", \"lifetime\": \"forever\", \"client_exe\": \"/x\", \"method\": \"text.set\", \"created\": \"2026-01-01T00:00:00Z\"}]}",
        "{\"version\": 1, \"grants\": [{\"id\": \"g-1\", \"lifetime\": \"always\", \"client_exe\": \"/x\", \"method\": \"text.set\", \"created\": \"2026-01-01T00:00:00Z\", \"wildcard\": true}]}",
        "{\"version\": 1, \"grants\": [{\"id\": \"g-1\", \"lifetime\": \"1h\", \"client_exe\": \"/x\", \"method\": \"text.set\", \"created\": \"2026-01-01T00:00:00Z\"}]}",
        "",
    ]

    @Test("a corrupt grants file denies everything (not allow-all) until revoke_all resets it", arguments: corruptFiles)
    func corruptGrantsDenyAll(_ contents: String) async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        try FileManager.default.createDirectory(atPath: (sandbox.grantsFile as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try contents.write(toFile: sandbox.grantsFile, atomically: true, encoding: .utf8)
        let broker = makeBroker(sandbox)
        #expect(!broker.policyStatus.ok)
        #expect(broker.status["grants"]?["error"]?.stringValue != nil)
        let denied = await broker.decide(request("tree.snapshot"))
        #expect(denied.reason == .policyError)
        #expect(denied.message.contains("revoke-all"))

        #expect(broker.revokeAll() == 0)
        await broker.flush()
        #expect(await broker.decide(request("tree.snapshot")).effect == .allow)
        #expect(FileManager.default.fileExists(atPath: sandbox.grantsFile + ".corrupt"))
        #expect(try String(contentsOfFile: sandbox.grantsFile + ".corrupt", encoding: .utf8) == contents)
        #expect(makeBroker(sandbox).policyStatus.ok)
    }

    @Test("revoke and revoke_all work while a policy file is broken")
    func revokeWithBrokenPolicy() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_always")))
        let a = try #require(await broker.decide(request("text.set", name: "A")).grantID)
        _ = await broker.decide(request("text.set", name: "B"))
        sandbox.writeUser("this is not toml")
        sandbox.writeAdmin("bad.toml", "[[rule]]\nnope = 1\n")
        broker.reload()
        #expect(!broker.policyStatus.ok)
        #expect(broker.revoke(id: a))
        #expect(broker.revokeAll() == 1)
        await broker.flush()
        let json = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: sandbox.grantsFile))))
        #expect(json["grants"]?.arrayValue?.isEmpty == true)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("grants.list shows rules of both layers with layer and id, and live grants")
    func listing() async throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("site.toml", "[[rule]]\nid = \"lock\"\neffect = \"deny\"\nactions = [\"write\"]\napp = \"bank\"\n")
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"observe\", \"text.read\"]\nexpires = 2030-01-01T00:00:00Z\n")
        let broker = makeBroker(sandbox)
        let rules = broker.listGrants()["rules"]?.arrayValue ?? []
        #expect(rules.count == 2)
        #expect(rules[0]["id"]?.stringValue == "lock")
        #expect(rules[0]["layer"]?.stringValue == "admin")
        #expect(rules[1]["id"]?.stringValue == "policy.toml#1")
        #expect(rules[1]["layer"]?.stringValue == "user")
        #expect(rules[1]["actions"] == JSONValue(["observe", "text.read"]))
        #expect(rules[1]["expires"]?.stringValue == "2030-01-01T00:00:00Z")
    }

    @Test("reload reports each file with its SHA-256 through events and status")
    func reloadEvents() throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("a.toml", "default = \"ask\"\n")
        sandbox.writeUser("default = \"deny\"\n")
        let seen = Mutex<[String]>([])
        let broker = makeBroker(sandbox, events: { event in
            if case .policyLoaded(let path, _, let sha, _) = event { seen.withLock { $0.append("\((path as NSString).lastPathComponent)=\(sha)") } }
            if case .policyError(let path, _, let line, _) = event { seen.withLock { $0.append("error \((path as NSString).lastPathComponent):\(line ?? 0)") } }
        })
        let loaded = seen.withLock { $0 }
        #expect(loaded.count == 2)
        #expect(loaded.allSatisfy { $0.split(separator: "=").last?.count == 64 })
        sandbox.writeUser("default = \n")
        broker.reload()
        #expect(seen.withLock { $0 }.last == "error policy.toml:1")
        let files = broker.status["policy"]?["files"]?.arrayValue ?? []
        #expect(files.contains { $0["layer"]?.stringValue == "user" && $0["error"]?.stringValue?.contains("policy.toml:1") == true })
    }

    @Test("a sensitive app is hidden from apps.list and denied under an allow-all rule")
    func sensitiveHiddenAndDenied() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("sensitive_apps = [\"Secret*\"]\n[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        let broker = makeBroker(sandbox)
        let requester = client()
        let hidden: [TargetInfo] = [
            TargetInfo(appName: "KeePassXC", appExe: "/usr/bin/keepassxc", appPid: 10),
            TargetInfo(appName: "Renamed", appExe: "/usr/bin/keepassxc", appPid: 11),
            TargetInfo(appName: "Bitwarden", appExe: "/opt/Bitwarden/bitwarden", appPid: 12),
            TargetInfo(appName: "gcr-prompter", appExe: "/usr/libexec/gcr-prompter", appPid: 13),
            TargetInfo(appName: "xfce4-screensaver", appExe: "/usr/bin/xfce4-screensaver", appPid: 14),
            TargetInfo(appName: "Secret Santa", appExe: "/usr/bin/santa", appPid: 15),
        ]
        for app in hidden {
            #expect(!mayList(broker, requester, app), "\(app)")
            for method in ["tree.snapshot", "text.read", "element.activate", "text.set"] {
                let decision = await broker.decide(request(method, app: app.appName, appExe: app.appExe, appPid: app.appPid))
                #expect(decision.reason == .hardDeny)
                #expect(decision.message.contains("sensitive app"))
            }
        }
        #expect(mayList(broker, requester, TargetInfo(appName: "Mousepad", appExe: "/usr/bin/mousepad", appPid: 20)))
    }

    /// Whether apps.list would show `app` to `client`: a standing decision, never a prompt.
    func mayList(_ broker: Broker, _ client: ClientIdentity, _ app: TargetInfo) -> Bool {
        broker.standing([.observeApp(client: client, method: "apps.list", target: app)])[0].effect == .allow
    }

    @Test("apps.list shows apps a rule allows; an app that would need asking is not shown, nor a denied one")
    func listFilter() {
        let sandbox = Sandbox()
        sandbox.writeUser("""
            [[rule]]\neffect = "deny"\nactions = ["observe"]\napp = "private"\n
            [[rule]]\neffect = "allow"\nactions = ["apps.list"]\napp = "public"\n
            """)
        let broker = makeBroker(sandbox)
        #expect(!mayList(broker, client(), TargetInfo(appName: "private", appExe: "/usr/bin/private")))
        #expect(mayList(broker, client(), TargetInfo(appName: "public", appExe: "/usr/bin/public")))
        #expect(!mayList(broker, client(), TargetInfo(appName: "other", appExe: "/usr/bin/other")), "ask is never a silent yes")
        // The decision names why, for the stream's withheld event.
        let other = broker.standing([.observeApp(client: client(), method: "events.subscribe",
                                                 target: TargetInfo(appName: "other", appExe: "/usr/bin/other"))])[0]
        #expect(other.reason == .wouldPrompt)
    }

    @Test("password text is denied under an allow-all rule; writing it is a policy question")
    func passwordText() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        let broker = makeBroker(sandbox)
        let read = await broker.decide(request("text.read", role: "password text", name: "Password"))
        #expect(read.reason == .hardDeny)
        #expect(read.rpcError?.data?["reason"]?.stringValue == "hard_deny")
        #expect(await broker.decide(request("text.read", role: "text", name: "Password")).effect == .allow)
        #expect(await broker.decide(request("text.set", role: "password text", name: "Password")).effect == .allow)
    }

    @Test("for act and write the client's unchanged executable is the decision's last input, asked after any prompt")
    func exeIsAnInput() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n[[rule]]\neffect = \"ask\"\nactions = [\"value.set\"]\n")
        let broker = makeBroker(sandbox)
        let asked = Mutex(0)
        func with(_ method: String, unchanged: Bool) -> BrokerRequest {
            var r = request(method)
            r.clientUnchanged = { asked.withLock { $0 += 1 }; return unchanged }
            return r
        }
        for method in ["text.set", "element.activate"] {
            let changed = await broker.decide(with(method, unchanged: false))
            #expect(changed.effect == .deny && changed.execChanged, "\(method)")
            #expect(changed.rpcError?.data?["detail"] == "exec_after_connect")
            #expect(await broker.decide(with(method, unchanged: true)).effect == .allow)
        }
        // Observing and reading are not actions: not asked.
        let before = asked.withLock { $0 }
        #expect(await broker.decide(with("tree.snapshot", unchanged: false)).effect == .allow)
        #expect(await broker.decide(with("text.read", unchanged: false)).effect == .allow)
        #expect(asked.withLock { $0 } == before)
        // After a prompt: the person allowed it, but the program behind the connection changed.
        let helper = FakeHelper(behavior: .answer("allow_once"))
        try broker.registerHelper(helper)
        let prompted = await broker.decide(with("value.set", unchanged: false))
        #expect(helper.callCount == 1)
        #expect(prompted.prompted && prompted.effect == .deny && prompted.execChanged)
    }

    @Test("denial messages say who, what, where and what to do")
    func messages() async {
        let sandbox = Sandbox()
        sandbox.writeUser("default = \"deny\"\n")
        let broker = makeBroker(sandbox)
        let decision = await broker.decide(request("text.set", name: "Amount"))
        let error = decision.rpcError!
        #expect(error.message == "Denied: no rule allows /usr/bin/python3 to write to 'ledger' ('Amount') (text.set) and the policy default is deny. Add an allow or ask rule to the user policy; see docs/policy.md.")
        #expect(error.data == ["reason": "policy", "class": "write"])
    }
}

@Suite("Prompt text")
struct PromptTextTests {
    static let cases: [(String, String)] = [
        ("plain /usr/bin/python3", "plain /usr/bin/python3"),
        ("two\nlines", "two⟨U+000A⟩lines"),
        ("\u{1B}[31mred\u{1B}[0m", "⟨U+001B⟩[31mred⟨U+001B⟩[0m"),
        ("evil\u{202E}txt.exe", "evil⟨U+202E⟩txt.exe"),
        ("iso\u{2066}late\u{2069}", "iso⟨U+2066⟩late⟨U+2069⟩"),
        ("zero\u{200B}width", "zero⟨U+200B⟩width"),
        ("c1\u{85}next", "c1⟨U+0085⟩next"),
        ("tab\there", "tab⟨U+0009⟩here"),
        ("line\u{2028}para\u{2029}end", "line⟨U+2028⟩para⟨U+2029⟩end"),
        ("tag\u{E0041}s", "tag⟨U+E0041⟩s"),
        ("private\u{E000}use", "private⟨U+E000⟩use"),
        ("many     spaces\u{3000}\u{3000}wide", "many spaces wide"),
        ("Café ✓ 日本", "Café ✓ 日本"),
        // A backslash is an ordinary character here; the toolkit escaping doubles it.
        ("back\\nslash", "back\\nslash"),
    ]

    @Test("controls, separators, bidi and format characters are shown as escapes without a backslash", arguments: cases)
    func sanitize(_ input: String, _ expected: String) {
        #expect(PromptText.sanitize(input) == expected)
        #expect(!PromptText.sanitize(input).unicodeScalars.contains { $0.properties.generalCategory == .control })
    }

    @Test("long strings are cut with an ellipsis; an escape counts with its length")
    func truncation() {
        let text = PromptText.sanitize(String(repeating: "x", count: 10_000), limit: 50)
        #expect(text == String(repeating: "x", count: 50) + "…")
        let separators = PromptText.sanitize(String(repeating: "\u{2028}", count: 100_000), limit: 50)
        #expect(separators == String(repeating: "⟨U+2028⟩", count: 6) + "…")
    }

    @Test("stacked combining marks are shown as escapes after the second on a character")
    func combiningMarks() {
        #expect(PromptText.sanitize("e\u{301}") == "e\u{301}")
        #expect(PromptText.sanitize("e\u{301}\u{302}\u{303}") == "e\u{301}\u{302}⟨U+0303⟩")
        #expect(PromptText.sanitize("\u{301}x") == "⟨U+0301⟩x")
    }

    @Test("a fence cannot be closed from inside")
    func fence() {
        #expect(PromptText.fence("Calc") == "«Calc»")
        #expect(PromptText.fence("a» (its own words) Wants to: «b") == "«a⟨U+00BB⟩ (its own words) Wants to: ⟨U+00AB⟩b»")
        #expect(PromptText.fence("x\ny", limit: 3) == "«x…»")
    }

    @Test("markup: entities for Pango, doubled backslashes for GLib's escapes")
    func markup() {
        #expect(PromptText.markup("<b>x</b> & \"y\" 'z'") == "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot; &#39;z&#39;")
        #expect(PromptText.markup("a\\nb\\342\\200\\250") == "a\\\\nb\\\\342\\\\200\\\\250")
    }
}

@Suite("Process ancestry from /proc")
struct ProcfsInspectorTests {
    @Test("a child and grandchild descend from this process; not the other way round")
    func realProcesses() throws {
        // sh (child) runs sleep (grandchild); the trailing `true` keeps sh from exec'ing sleep.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "sleep 30; true"]
        // Not the test runner's stdout: a leftover child must not hold its pipe open.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // SIGKILL: a harness may start tests with SIGTERM blocked.
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        var grandchild: Int32?
        for _ in 0..<200 where grandchild == nil {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            grandchild = entries.compactMap(Int32.init).first { ProcfsInspector.parent(of: $0) == process.processIdentifier }
            if grandchild == nil { usleep(10_000) }
        }
        let sleeper = try #require(grandchild)
        defer { kill(sleeper, SIGKILL) }
        let me = getpid()
        let inspector = ProcfsInspector()
        #expect(inspector.isDescendant(process.processIdentifier, of: me))
        #expect(inspector.isDescendant(sleeper, of: me))
        #expect(inspector.isDescendant(sleeper, of: process.processIdentifier))
        #expect(!inspector.isDescendant(me, of: sleeper))
        #expect(!inspector.isDescendant(me, of: me))
        #expect(!inspector.isDescendant(sleeper, of: 999_999))
    }
}

/// Standing questions: what listings, streams and content ask the broker, never prompting.
@Suite("Standing decisions")
struct StandingDecisionTests {
    func client() -> ClientIdentity {
        BrokerTests.client(pid: 500, exe: TestIDs.python, script: "/home/me/agent.py", connection: 9)
    }

    let ledger = TargetInfo(appName: "ledger", appExe: "/usr/bin/ledger", appPid: 77)

    @Test("a remembered grant to see an app's tree lets the app be listed and streamed; a grant on an element does not")
    func grantsCoverListing() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("")
        let helper = FakeHelper(behavior: .answer("allow_session"))
        let broker = Broker(config: sandbox.config(), inspector: FakeProcesses(), logger: Logger(label: "t"))
        broker.reload()
        try broker.registerHelper(helper)
        let list = StandingQuestion.observeApp(client: client(), method: "apps.list", target: ledger)
        #expect(broker.standing([list])[0].effect == .deny)
        var fill = BrokerRequest(client: client(), method: "field.fill", riskClass: .write, target: ledger)
        fill.target?.role = "text"
        fill.target?.name = "Amount"
        #expect(await broker.decide(fill).effect == .allow)
        #expect(broker.standing([list])[0].effect == .deny, "a grant to type into a field is no grant to watch the app")
        let snapshot = BrokerRequest(client: client(), method: "tree.snapshot", riskClass: .observe, target: ledger)
        #expect(await broker.decide(snapshot).effect == .allow)
        let decisions = broker.standing([list, .observeApp(client: client(), method: "events.subscribe", target: ledger)])
        #expect(decisions.allSatisfy { $0.effect == .allow && $0.grantID != nil })
        // Content is decided as text.read of that element would be: the grant above is not one.
        let content = StandingQuestion.readContent(client: client(), app: ledger, role: "text", name: "Amount")
        #expect(broker.standing([content])[0].effect == .deny)
    }

    @Test("an explicit ask rule is never answered by a grant; a rule's expiry bounds the answer")
    func askRulesAndExpiry() {
        let sandbox = Sandbox()
        sandbox.writeUser("""
            [[rule]]
            effect = "ask"
            actions = ["events.subscribe"]
            [[rule]]
            id = "until"
            effect = "allow"
            actions = ["apps.list"]
            expires = 2030-01-01T00:00:00Z
            """)
        let broker = Broker(config: sandbox.config(), inspector: FakeProcesses(), logger: Logger(label: "t"))
        broker.reload()
        let stream = broker.standing([.observeApp(client: client(), method: "events.subscribe", target: ledger)])[0]
        #expect(stream.effect == .deny)
        #expect(stream.reason == .wouldPrompt)
        let list = broker.standing([.observeApp(client: client(), method: "apps.list", target: ledger)])[0]
        #expect(list.effect == .allow)
        #expect(list.validUntil == Date(timeIntervalSince1970: 1_893_456_000))
    }

    @Test("password text is never content, whatever the rules")
    func passwordNeverContent() {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        let broker = Broker(config: sandbox.config(), inspector: FakeProcesses(), logger: Logger(label: "t"))
        broker.reload()
        let answers = broker.standing([
            .readContent(client: client(), app: ledger, role: "password text", name: "Password"),
            .readContent(client: client(), app: ledger, role: "text", name: "Name"),
        ])
        #expect(answers.map(\.effect) == [.deny, .allow])
        #expect(answers[0].reason == .hardDeny)
    }

    @Test("every change that can change a decision bumps the generation and says so once")
    func generation() {
        let sandbox = Sandbox()
        sandbox.writeUser("")
        let seen = Mutex<[UInt64]>([])
        let broker = Broker(config: sandbox.config(), inspector: FakeProcesses(), events: { event in
            if case .decisionsChanged(let generation) = event { seen.withLock { $0.append(generation) } }
        }, logger: Logger(label: "t"))
        broker.reload()
        broker.revokeAll()
        broker.reload()
        #expect(seen.withLock { $0 } == [1, 2, 3])
        #expect(broker.generation == 3)
    }
}
