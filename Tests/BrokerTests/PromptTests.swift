import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Logging
import Synchronization
import Testing

@Suite("Prompts and remembered grants")
struct PromptTests {
    @Test("admin deny plus user allow: denied locked_down with zero prompts")
    func lockdownNeverPrompts() async throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("lock.toml", "[[rule]]\nid = \"lock\"\neffect = \"deny\"\nactions = [\"write\"]\napp = \"ledger\"\n")
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n[[rule]]\neffect = \"ask\"\nactions = [\"write\"]\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        for _ in 0..<5 {
            let decision = await broker.decide(request("text.set", name: "Amount"))
            #expect(decision.effect == .deny)
            #expect(decision.reason == .lockedDown)
            #expect(decision.ruleID == "lock")
            #expect(!decision.prompted)
        }
        #expect(helper.callCount == 0)
    }

    @Test("admin default deny is locked down too, and user rules cannot widen it past admin denies")
    func adminDefaultDeny() async throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("lock.toml", "default = \"deny\"\n")
        sandbox.writeUser("default = \"ask\"\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set"))
        #expect(decision.reason == .lockedDown)
        #expect(helper.callCount == 0)
    }

    @Test("a prompt carries the verified identity, label apart, target, preview and choices")
    func promptContents() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_once"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set", client: client(script: "/home/u/x.py"), role: "text", name: "Amount"))
        #expect(decision.effect == .allow)
        #expect(decision.prompted)
        #expect(decision.choice == "allow_once")
        let params = try #require(helper.prompts.first)
        let promptID = try #require(params["prompt_id"]?.stringValue)
        #expect(promptID.count == 32)
        #expect(promptID.allSatisfy { $0.isHexDigit })
        #expect(decision.promptID == promptID)
        #expect(params["client"]?["exe"]?.stringValue == TestIDs.python)
        #expect(params["client"]?["script"]?.stringValue == "/home/u/x.py")
        #expect(params["client"]?["label"]?.stringValue == "agent")
        #expect(params["client"]?["pid"]?.intValue == 4242)
        #expect(params["action"]?["method"]?.stringValue == "text.set")
        #expect(params["action"]?["class"]?.stringValue == "write")
        #expect(params["target"]?["app"]?.stringValue == "ledger")
        #expect(params["target"]?["name"]?.stringValue == "Amount")
        #expect(params["preview"]?.stringValue == "preview")
        #expect(params["kind"]?.stringValue == "request")
        #expect(params["choices"] == JSONValue(["deny", "allow_once", "allow_session", "allow_1h", "allow_always"]))
        #expect(params["timeout_s"]?.intValue == 5)
    }

    @Test("prompt ids are unique and unpredictable across many prompts")
    func promptIDsUnique() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .answer("deny"))
        try broker.registerHelper(helper)
        for _ in 0..<50 { _ = await broker.decide(request("text.set")) }
        let ids = Set(helper.prompts.compactMap { $0["prompt_id"]?.stringValue })
        #expect(ids.count == 50)
    }

    @Test("user deny answer: user_denied, nothing remembered, asked again next time")
    func userDenied() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .answer("deny"))
        try broker.registerHelper(helper)
        let first = await broker.decide(request("text.set"))
        #expect(first.reason == .userDenied)
        #expect(first.rpcError?.data?["reason"]?.stringValue == "user_denied")
        _ = await broker.decide(request("text.set"))
        #expect(helper.callCount == 2)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("an explicit ask rule offers only deny and allow_once, and asks every time")
    func explicitAskNoRemembering() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\nid = \"always-ask\"\neffect = \"ask\"\nactions = [\"write\"]\nreason = \"LLM agent writes\"\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set"))
        #expect(decision.effect == .deny)  // allow_always was not offered
        #expect(decision.reason == .noHelper)
        #expect(helper.prompts.first?["choices"] == JSONValue(["deny", "allow_once"]))
        #expect(helper.prompts.first?["rule"]?.stringValue == "always-ask")
        #expect(helper.prompts.first?["reason"]?.stringValue == "LLM agent writes")
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)

        let onceHelper = FakeHelper(pid: 901, connectionID: 9001, behavior: .answer("allow_once"))
        broker.connectionClosed(helper.identity.connectionID)
        try broker.registerHelper(onceHelper)
        #expect(await broker.decide(request("text.set")).effect == .allow)
        #expect(await broker.decide(request("text.set")).effect == .allow)
        #expect(onceHelper.callCount == 2)
    }

    @Test("unidentified clients are never prompted for (denied 'unidentified'), so nothing is remembered for them")
    func unidentifiedNoRemembering() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        #expect(await broker.decide(request("text.set", client: client(exe: ""))).reason == .unidentified)
        #expect(helper.callCount == 0)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("a choice that was not offered, or a malformed answer, is a denial", arguments: [
        ["choice": "allow_forever"] as JSONValue, ["choice": 1] as JSONValue, JSONValue.string("allow_once"), JSONValue.null,
        ["decision": "allow_once"] as JSONValue,
    ])
    func malformedAnswers(_ answer: JSONValue) async throws {
        let broker = makeBroker(Sandbox())
        try broker.registerHelper(FakeHelper(behavior: .raw(answer)))
        let decision = await broker.decide(request("text.set"))
        #expect(decision.effect == .deny)
        #expect(decision.reason == .noHelper)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("prompt timeout denies with reason timeout and withdraws the prompt")
    func timeout() async throws {
        let broker = makeBroker(Sandbox(), timeout: .milliseconds(100))
        let helper = FakeHelper(behavior: .silent)
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set"))
        #expect(decision.effect == .deny)
        #expect(decision.reason == .timeout)
        #expect(decision.prompted)
        await helper.waitForCancel()
        #expect(helper.cancelled == [decision.promptID!])
    }

    @Test("helper crash denies with no_agent")
    func helperCrash() async throws {
        let broker = makeBroker(Sandbox())
        try broker.registerHelper(FakeHelper(behavior: .crash))
        let decision = await broker.decide(request("text.set"))
        #expect(decision.reason == .noHelper)
    }

    @Test("helper disconnect mid-prompt denies, unregisters it, and a late answer is ignored")
    func helperDisconnect() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .gated)
        try broker.registerHelper(helper)
        async let pending = broker.decide(request("text.set"))
        await helper.waitForPrompts(1)
        broker.connectionClosed(helper.identity.connectionID)
        let decision = await pending
        #expect(decision.reason == .noHelper)
        #expect(!broker.helperRegistered)
        helper.release("allow_always")  // the old helper answers after it went away
        try await Task.sleep(for: .milliseconds(50))
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
        #expect(broker.check(request("text.set", interactive: false)).reason == .wouldPrompt)
    }

    @Test("an answer from a connection that is not the prompt's helper is ignored")
    func answerFromOtherConnectionIgnored() async throws {
        let broker = makeBroker(Sandbox(), timeout: .milliseconds(300))
        let first = FakeHelper(behavior: .gated)
        try broker.registerHelper(first)
        async let pending = broker.decide(request("text.set"))
        await first.waitForPrompts(1)
        // The first helper goes away and a second one registers; the first prompt is already
        // denied, and the second helper never saw it, so nothing it says can approve it.
        broker.connectionClosed(first.identity.connectionID)
        let second = FakeHelper(pid: 901, connectionID: 9001, behavior: .answer("allow_always"))
        try broker.registerHelper(second)
        first.release("allow_always")
        let decision = await pending
        #expect(decision.effect == .deny)
        #expect(second.callCount == 0)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("client disconnect mid-prompt: agent.cancel sent, nothing persisted")
    func clientDisconnect() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .gated)
        try broker.registerHelper(helper)
        let requester = client(connection: 77)
        async let pending = broker.decide(request("text.set", client: requester))
        await helper.waitForPrompts(1)
        broker.connectionClosed(77)
        let decision = await pending
        #expect(decision.reason == .cancelled)
        #expect(decision.rpcError?.code == .requestCancelled)
        await helper.waitForCancel()
        #expect(helper.cancelled == [decision.promptID!])
        helper.release("allow_always")  // the person clicks after the client left
        try await Task.sleep(for: .milliseconds(50))
        await broker.flush()
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
        #expect(!FileManager.default.fileExists(atPath: sandbox.grantsFile))
    }

    @Test("task cancellation mid-prompt withdraws the prompt")
    func taskCancel() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .gated)
        try broker.registerHelper(helper)
        let task = Task { await broker.decide(request("text.set")) }
        await helper.waitForPrompts(1)
        task.cancel()
        let decision = await task.value
        #expect(decision.reason == .cancelled)
        await helper.waitForCancel()
    }

    @Test("a second helper is refused while one is registered")
    func secondHelperRefused() throws {
        let broker = makeBroker(Sandbox())
        try broker.registerHelper(FakeHelper(behavior: .answer("deny")))
        #expect(throws: RPCError.self) {
            try broker.registerHelper(FakeHelper(pid: 901, connectionID: 9001, behavior: .answer("allow_always")))
        }
        do {
            try broker.registerHelper(FakeHelper(pid: 901, connectionID: 9001, behavior: .answer("allow_always")))
        } catch {
            #expect(error.code == .denied)
            #expect(error.message.contains("already registered"))
        }
    }

    @Test("a helper whose exe is not in prompt_agents is refused; the admin list replaces the user's")
    func unlistedHelperRefused() throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        #expect(throws: RPCError.self) { try broker.registerHelper(FakeHelper(exe: "/usr/bin/python3", behavior: .answer("allow_always"))) }
        #expect(throws: RPCError.self) { try broker.registerHelper(FakeHelper(exe: "", behavior: .answer("allow_always"))) }

        sandbox.writeUser("prompt_agents = [\"/home/u/bin/my-prompt\"]\n")
        broker.reload()
        #expect(throws: RPCError.self) { try broker.registerHelper(FakeHelper(behavior: .answer("deny"))) }
        try broker.registerHelper(FakeHelper(exe: "/home/u/bin/my-prompt", behavior: .answer("deny")))

        sandbox.writeAdmin("agents.toml", "prompt_agents = [\"/usr/libexec/site-prompt\"]\n")
        broker.reload()  // the registered helper is no longer listed: dropped
        #expect(!broker.helperRegistered)
        #expect(throws: RPCError.self) { try broker.registerHelper(FakeHelper(exe: "/home/u/bin/my-prompt", connectionID: 9002, behavior: .answer("deny"))) }
        try broker.registerHelper(FakeHelper(exe: "/usr/libexec/site-prompt", connectionID: 9003, behavior: .answer("deny")))
    }

    @Test("prompt_agents may name the helper through a symlink; the verified real path is accepted")
    func helperThroughSymlink() throws {
        let sandbox = Sandbox()
        let real = sandbox.root + "/bin/real-prompt"
        try FileManager.default.createDirectory(atPath: sandbox.root + "/bin", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: real, contents: Data())
        try FileManager.default.createSymbolicLink(atPath: sandbox.root + "/link", withDestinationPath: sandbox.root + "/bin")
        sandbox.writeUser("prompt_agents = [\"\(sandbox.root)/link/real-prompt\"]\n")
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(exe: real, behavior: .answer("deny")))
        #expect(broker.helperRegistered)
    }

    @Test("a helper spawned by the requesting client gets no prompt")
    func helperDescendingFromClientGetsNoPrompt() async throws {
        let processes = FakeProcesses([900: 800, 800: 4242])  // helper 900 → 800 → client 4242
        let broker = makeBroker(Sandbox(), processes: processes)
        let helper = FakeHelper(pid: 900, behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set"))
        #expect(decision.effect == .deny)
        #expect(decision.reason == .noHelper)
        #expect(decision.message.contains("started by the requesting client"))
        #expect(helper.callCount == 0)
        // Another client is still served.
        let other = await broker.decide(request("text.set", client: client(pid: 5000, connection: 2)))
        #expect(other.effect == .allow)
        #expect(helper.callCount == 1)
    }

    @Test("the helper cannot approve its own requests")
    func helperOwnRequests() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(pid: 900, behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set", client: client(pid: 900, exe: TestIDs.helperExe, connection: 9000)))
        #expect(decision.reason == .noHelper)
        #expect(helper.callCount == 0)
    }

    @Test("the helper's windows and its children's are hard-denied, even under allow-all")
    func helperWindowsHardDenied() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        let processes = FakeProcesses([950: 900])  // zenity 950 spawned by helper 900
        let broker = makeBroker(sandbox, processes: processes)
        try broker.registerHelper(FakeHelper(pid: 900, behavior: .answer("deny")))
        for pid: Int32 in [900, 950] {
            let decision = await broker.decide(request("element.activate", app: "zenity", appExe: "/usr/bin/zenity", appPid: pid,
                                                       role: "push button", name: "Allow"))
            #expect(decision.reason == .hardDeny)
        }
        #expect(await broker.decide(request("element.activate", appPid: 3000)).effect == .allow)
    }

    @Test("broker.check reports ask without prompting or consuming anything")
    func checkNeverPrompts() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        for _ in 0..<3 {
            let decision = broker.check(request("text.set"))
            #expect(decision.effect == .ask)
            #expect(decision.rpcError == nil)
            #expect(decision.message.hasPrefix("A person will be asked"))
        }
        #expect(helper.callCount == 0)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("before the first reload everything is denied")
    func denyBeforeLoad() async {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        let broker = Broker(config: sandbox.config(), inspector: FakeProcesses(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        #expect(await broker.decide(request("tree.snapshot")).reason == .policyError)
        broker.reload()
        #expect(await broker.decide(request("tree.snapshot")).effect == .allow)
    }

    @Test("no helper registered: no_agent; interactive=false: would_prompt")
    func noAgent() async {
        let broker = makeBroker(Sandbox())
        #expect(await broker.decide(request("text.set")).reason == .noHelper)
        #expect(await broker.decide(request("text.set", interactive: false)).reason == .wouldPrompt)
        #expect(broker.check(request("text.set")).reason == .noHelper)
    }

    @Test("a remembered grant for field A does not cover field B, another method, app or client")
    func grantScopeExact() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .script(["allow_always"]))
        try broker.registerHelper(helper)
        let shown = request("text.set", client: client(script: "/home/u/a.py"), role: "text", name: "Field A")
        let first = await broker.decide(shown)
        #expect(first.effect == .allow)
        #expect(first.grantID != nil)
        #expect(await broker.decide(shown).grantID == first.grantID)
        #expect(helper.callCount == 1)

        let variants: [BrokerRequest] = [
            request("text.set", client: client(script: "/home/u/a.py"), role: "text", name: "Field B", interactive: false),
            request("field.fill", client: client(script: "/home/u/a.py"), role: "text", name: "Field A", interactive: false),
            request("text.set", client: client(script: "/home/u/a.py"), app: "other", role: "text", name: "Field A", interactive: false),
            request("text.set", client: client(script: "/home/u/a.py"), appExe: "/usr/bin/evil", role: "text", name: "Field A", interactive: false),
            request("text.set", client: client(script: "/home/u/a.py"), role: "entry", name: "Field A", interactive: false),
            request("text.set", client: client(script: "/home/u/b.py"), role: "text", name: "Field A", interactive: false),
            request("text.set", client: client(), role: "text", name: "Field A", interactive: false),
            request("text.set", client: client(exe: "/usr/bin/python3.12", script: "/home/u/a.py"), role: "text", name: "Field A", interactive: false),
        ]
        for variant in variants {
            let decision = await broker.decide(variant)
            #expect(decision.reason == .wouldPrompt)
        }
    }

    @Test("allow_session dies with the client's connection and is never written to disk")
    func sessionGrant() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_session"))
        try broker.registerHelper(helper)
        let requester = client(connection: 5)
        #expect(await broker.decide(request("text.set", client: requester)).effect == .allow)
        #expect(await broker.decide(request("text.set", client: requester, interactive: false)).effect == .allow)
        // Same exe, other connection: not covered.
        #expect(await broker.decide(request("text.set", client: client(pid: 4243, connection: 6), interactive: false)).reason == .wouldPrompt)
        await broker.flush()
        #expect(!FileManager.default.fileExists(atPath: sandbox.grantsFile))
        broker.connectionClosed(5)
        #expect(await broker.decide(request("text.set", client: requester, interactive: false)).reason == .wouldPrompt)
    }

    @Test("allow_1h expires exactly one hour later, also after a restart")
    func hourGrant() async throws {
        let sandbox = Sandbox()
        let clock = TestClock()
        let start = clock.now
        let broker = makeBroker(sandbox, clock: clock)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_1h")))
        #expect(await broker.decide(request("text.set")).effect == .allow)
        await broker.flush()

        let restarted = makeBroker(sandbox, clock: clock)
        clock.set(start.addingTimeInterval(3599.999))
        #expect(await restarted.decide(request("text.set", interactive: false)).effect == .allow)
        clock.set(start.addingTimeInterval(3600))
        #expect(await restarted.decide(request("text.set", interactive: false)).reason == .wouldPrompt)
        #expect(await broker.decide(request("text.set", interactive: false)).reason == .wouldPrompt)
    }

    @Test("allow_always survives a restart and is listed, revoked and gone")
    func alwaysGrant() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_always")))
        let decision = await broker.decide(request("text.set", name: "A"))
        let id = try #require(decision.grantID)
        await broker.flush()
        let restarted = makeBroker(sandbox)
        let listed = restarted.listGrants()["grants"]?.arrayValue ?? []
        #expect(listed.count == 1)
        #expect(listed.first?["id"]?.stringValue == id)
        #expect(listed.first?["layer"]?.stringValue == "grants")
        #expect(listed.first?["name"]?.stringValue == "A")
        #expect(await restarted.decide(request("text.set", name: "A", interactive: false)).grantID == id)
        #expect(restarted.revoke(id: id))
        #expect(!restarted.revoke(id: id))
        #expect(await restarted.decide(request("text.set", name: "A", interactive: false)).reason == .wouldPrompt)
        await restarted.flush()
        #expect(makeBroker(sandbox).listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("an allow_once answer lets exactly the prompting request through, not its queued twins")
    func onceAnswerUnderConcurrency() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .script(["allow_once"]))  // every later prompt: deny
        try broker.registerHelper(helper)
        let results = await withTaskGroup(of: Decision.self) { group in
            for _ in 0..<50 { group.addTask { await broker.decide(request("text.set", name: "A")) } }
            return await group.reduce(into: [Decision]()) { $0.append($1) }
        }
        #expect(results.filter { $0.effect == .allow }.count == 1)
        // Everyone else was asked again (and denied) or turned away; nobody rode on the answer.
        let denied = results.filter { $0.reason == .userDenied }.count
        let limited = results.filter { $0.reason == .rateLimited }.count
        #expect(denied + limited == 49)
        #expect(helper.callCount == denied + 1)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test("one prompt per client at a time, 8 wait, the rest are rate_limited; other clients are not starved")
    func rateLimit() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .gated)
        try broker.registerHelper(helper)
        let finished = Collector<Decision>()
        let tasks = (0..<12).map { i in
            Task {
                let decision = await broker.decide(request("text.set", name: "f\(i)"))
                finished.append(decision)
                return decision
            }
        }
        // The three that do not fit are turned away at once; the other nine are in the queue.
        let deadline = ContinuousClock.now + .seconds(3)
        while finished.items.count < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(finished.items.count == 3)
        #expect(finished.items.allSatisfy { $0.reason == .rateLimited })
        #expect(helper.callCount == 1)
        // Another client gets its own prompt while the first client's queue is full.
        let other = Task { await broker.decide(request("text.set", client: client(pid: 5000, connection: 2))) }
        await helper.waitForPrompts(2)
        for _ in 0..<10 { helper.release("deny") }
        var limited = 0
        for task in tasks where await task.value.reason == .rateLimited { limited += 1 }
        #expect(limited == 3)
        #expect(await other.value.reason == .userDenied)
    }

    @Test("a burst of concurrent requests never queues more than the bound (admission is atomic)")
    func admissionBoundUnderBurst() async throws {
        for _ in 0..<20 {
            let broker = makeBroker(Sandbox())
            let helper = FakeHelper(behavior: .gated)
            try broker.registerHelper(helper)
            let finished = Collector<Decision>()
            let burst = 64
            let tasks = (0..<burst).map { i in
                Task.detached {
                    let decision = await broker.decide(request("text.set", name: "f\(i)"))
                    finished.append(decision)
                    return decision
                }
            }
            // 1 prompting + 8 waiting; everyone else is turned away without waiting for the helper.
            let deadline = ContinuousClock.now + .seconds(3)
            while finished.items.count < burst - 9, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(finished.items.count == burst - 9)
            #expect(finished.items.allSatisfy { $0.reason == .rateLimited })
            for _ in 0..<9 { helper.release("deny") }
            for task in tasks { _ = await task.value }
            #expect(helper.callCount == 9)
        }
    }

    @Test("allow_session answer lets queued identical requests through without more prompts")
    func queuedRequestsReevaluate() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .gated)
        try broker.registerHelper(helper)
        let tasks = (0..<4).map { _ in Task { await broker.decide(request("text.set", name: "A")) } }
        await helper.waitForPrompts(1)
        try await Task.sleep(for: .milliseconds(50))
        helper.release("allow_session")
        for task in tasks { #expect(await task.value.effect == .allow) }
        #expect(helper.callCount == 1)
    }

    @Test("revoke takes effect for requests already queued")
    func revokeAffectsQueued() async throws {
        // The grant is revoked from the grantCreated event: after the answer, before the queued
        // twin's turn.
        let box = Mutex<Broker?>(nil)
        let revoked = Mutex(0)
        let broker = makeBroker(Sandbox(), events: { event in
            if case .grantCreated = event, let broker = box.withLock({ $0 }) {
                revoked.withLock { $0 += broker.revokeAll() }
            }
        })
        box.withLock { $0 = broker }
        let helper = FakeHelper(behavior: .gated)
        try broker.registerHelper(helper)
        let first = Task { await broker.decide(request("text.set", name: "A")) }
        await helper.waitForPrompts(1)
        let queued = Task { await broker.decide(request("text.set", name: "A")) }
        try await Task.sleep(for: .milliseconds(50))
        helper.release("allow_always")
        #expect(await first.value.effect == .allow)
        #expect(revoked.withLock { $0 } == 1)
        await helper.waitForPrompts(2)
        helper.release("deny")
        #expect(await queued.value.reason == .userDenied)
    }
}
