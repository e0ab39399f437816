import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing

@Suite("Task sessions: one approval for a bounded task")
struct TaskTests {
    static func entry(_ json: JSONValue) throws -> TaskScopeEntry { try TaskScopeEntry(json: json, field: "scope.0") }

    /// Type into Payee and Amount, press Record, in /usr/bin/ledger.
    static func ledgerTask(maxActions: Int? = nil, expires: Int = 600, idle: Int? = nil, recordMax: Int? = nil) throws -> TaskRequest {
        var press: JSONObject = ["actions": ["act"], "app_exe": "/usr/bin/ledger", "role": "push button", "name": "Record"]
        if let recordMax { press["max"] = JSONValue(recordMax) }
        return TaskRequest(title: "Record this month's receipts",
                           scope: [try entry(["actions": ["write"], "app_exe": "/usr/bin/ledger", "name": "Payee"]),
                                   try entry(["actions": ["write"], "app_exe": "/usr/bin/ledger", "name": "Amount"]),
                                   try entry(.object(press))],
                           expiresIn: .seconds(Int64(expires)), idle: idle.map { .seconds(Int64($0)) }, maxActions: maxActions)
    }

    @Test("one approval, then 20 requests inside the scope with no further prompt; outside it the person is asked")
    func oneApprovalManyActions() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .script(["approve_task", "deny"]))
        try broker.registerHelper(helper)
        let begun = try await broker.beginTask(try Self.ledgerTask(), client: client())
        let id = try #require(begun["task_id"]?.stringValue)
        #expect(helper.callCount == 1)
        let prompt = try #require(helper.prompts.first)
        #expect(prompt["kind"] == "task")
        #expect(prompt["choices"] == ["deny", "approve_task"])
        #expect(prompt["title"] == "Record this month's receipts")
        #expect(prompt["scope"]?.arrayValue?.count == 3)
        for i in 0..<20 {
            let request = i.isMultiple(of: 2) ? request("field.fill", role: "text", name: "Amount")
                                              : request("element.activate", role: "push button", name: "Record")
            let decision = await broker.decide(request)
            #expect(decision.effect == .allow && decision.taskID == id && !decision.prompted, "\(i): \(decision.message)")
            #expect(decision.json["task"]?.stringValue == id)
        }
        #expect(helper.callCount == 1)
        // Outside the scope: another field, another app, the delete button.
        let outside = await broker.decide(request("field.fill", role: "text", name: "Notes"))
        #expect(outside.taskID == nil && outside.prompted && outside.reason == .userDenied)
        #expect(await broker.decide(request("field.fill", app: "other", appExe: "/usr/bin/other", name: "Amount")).taskID == nil)
        let status = broker.taskStatus(nil, client: client())
        #expect(status.first?["actions_used"] == 20)
        #expect(status.first?["per_entry_used"] == [0, 10, 10])
    }

    @Test("max_actions and an entry's max end coverage; observe and read are not counted")
    func limits() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .script(["approve_task"]))
        try broker.registerHelper(helper)
        _ = try await broker.beginTask(try Self.ledgerTask(maxActions: 5, recordMax: 2), client: client())
        let press = request("element.activate", role: "push button", name: "Record")
        #expect(await broker.decide(press).taskID != nil)
        #expect(await broker.decide(press).taskID != nil)
        // Record's own max is reached: the next press is asked about (the helper now denies).
        #expect(await broker.decide(press).taskID == nil)
        let fill = request("field.fill", role: "text", name: "Payee")
        #expect(await broker.decide(fill).taskID != nil)
        #expect(await broker.decide(fill).taskID != nil)
        #expect(await broker.decide(fill).taskID != nil)  // the 5th counted action: the task ends with it
        #expect(broker.taskStatus(nil, client: client()).isEmpty)
        #expect(await broker.decide(fill).taskID == nil)
    }

    @Test("expiry and idleness end the task")
    func expiryAndIdle() async throws {
        let sandbox = Sandbox()
        let clock = TestClock()
        let broker = makeBroker(sandbox, clock: clock)
        try broker.registerHelper(FakeHelper(behavior: .answer("approve_task")))
        _ = try await broker.beginTask(try Self.ledgerTask(expires: 60), client: client())
        let fill = request("field.fill", role: "text", name: "Payee", interactive: false)
        #expect(await broker.decide(fill).taskID != nil)
        clock.advance(61)
        #expect(await broker.decide(fill).reason == .wouldPrompt)

        _ = try await broker.beginTask(try Self.ledgerTask(expires: 600, idle: 30), client: client())
        clock.advance(20)
        #expect(await broker.decide(fill).taskID != nil)
        clock.advance(20)
        #expect(await broker.decide(fill).taskID != nil, "used 20 s ago: not idle")
        clock.advance(31)
        #expect(await broker.decide(fill).reason == .wouldPrompt)
    }

    @Test("a task never lifts a deny or an explicit ask; admin denies and an admin default deny refuse it at begin")
    func decisionOrder() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("""
            [[rule]]
            id = "no-notes"
            effect = "deny"
            actions = ["write"]
            name = "Amount"
            [[rule]]
            id = "ask-record"
            effect = "ask"
            actions = ["act"]
            name = "Record"
            """)
        sandbox.writeAdmin("a.toml", "[[rule]]\nid = \"no-delete\"\neffect = \"deny\"\nactions = [\"act\"]\nname = \"Delete\"\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .script(["approve_task", "deny", "deny"]))
        try broker.registerHelper(helper)
        _ = try await broker.beginTask(try Self.ledgerTask(), client: client())
        #expect(await broker.decide(request("field.fill", role: "text", name: "Amount")).reason == .policy)
        let asked = await broker.decide(request("element.activate", role: "push button", name: "Record"))
        #expect(asked.prompted && asked.taskID == nil)
        #expect(await broker.decide(request("field.fill", role: "text", name: "Payee")).taskID != nil)

        // An entry the admin layer forbids is refused before anyone is asked.
        let prompts = helper.callCount
        let deleting = TaskRequest(title: "t", scope: [try Self.entry(["actions": ["act"], "app_exe": "/usr/bin/ledger", "name": "Delete"])],
                                   expiresIn: .seconds(60), idle: nil, maxActions: nil)
        await #expect(throws: RPCError.self) { _ = try await broker.beginTask(deleting, client: client()) }
        do {
            _ = try await broker.beginTask(deleting, client: client())
        } catch {
            #expect(error.data?["reason"] == "locked_down")
            #expect(error.data?["rule"] == "no-delete")
        }
        // An admin deny the begin check cannot see (a glob in the scope) still denies each request.
        let anyButton = TaskRequest(title: "t", scope: [try Self.entry(["actions": ["act"], "app_exe": "/usr/bin/ledger"])],
                                    expiresIn: .seconds(60), idle: nil, maxActions: nil)
        let wide = FakeHelper(connectionID: 9002, behavior: .answer("approve_task"))
        let other = makeBroker(sandbox)
        try other.registerHelper(wide)
        _ = try await other.beginTask(anyButton, client: client())
        #expect(await other.decide(request("element.activate", role: "push button", name: "Delete")).reason == .lockedDown)
        #expect(helper.callCount == prompts)

        sandbox.writeAdmin("b.toml", "default = \"deny\"\n")
        broker.reload()
        do {
            _ = try await broker.beginTask(try Self.ledgerTask(), client: client())
            Issue.record("an admin default deny did not refuse the task")
        } catch let error as RPCError {
            #expect(error.data?["reason"] == "locked_down")
        }
    }

    @Test("another client process gets nothing from the task; status and end act on one's own only")
    func ownClientOnly() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("approve_task")))
        let begun = try await broker.beginTask(try Self.ledgerTask(), client: client())
        let id = try #require(begun["task_id"]?.stringValue)
        let stranger = client(pid: 5151, connection: 2, origin: ProcessOrigin(cgroup: TestOrigins.slice + "/other.scope", startTime: 7))
        // Same pid, another process (start time): a reused pid is not the client.
        let reused = client(origin: ProcessOrigin(cgroup: TestOrigins.client.cgroup, startTime: 99))
        for other in [stranger, reused] {
            let decision = await broker.decide(request("field.fill", client: other, role: "text", name: "Payee", interactive: false))
            #expect(decision.taskID == nil && decision.reason == .wouldPrompt)
            #expect(broker.taskStatus(nil, client: other).isEmpty)
            #expect(!broker.endTask(id, client: other))
        }
        // Another connection of the same process is the same client.
        let second = client(connection: 3)
        #expect(await broker.decide(request("field.fill", client: second, role: "text", name: "Payee")).taskID == id)
        #expect(broker.check(request("field.fill", role: "text", name: "Payee")).taskID == id)
        #expect(broker.taskStatus(id, client: client()).first?["requests_covered"] == 1, "check consumes nothing")
        #expect(broker.endTask(id, client: client()))
        #expect(broker.taskStatus(nil, client: client()).isEmpty)
    }

    @Test("a task dies with its client's connection, with revoke, with halt; not begun while paused; listed in grants.list")
    func endings() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("approve_task")))
        _ = try await broker.beginTask(try Self.ledgerTask(), client: client())
        #expect(broker.listGrants()["tasks"]?.arrayValue?.count == 1)
        broker.connectionClosed(1)
        #expect(broker.listGrants()["tasks"]?.arrayValue?.isEmpty == true)

        let begun = try await broker.beginTask(try Self.ledgerTask(), client: client())
        #expect(broker.revoke(id: try #require(begun["task_id"]?.stringValue)))
        #expect(broker.taskStatus(nil, client: client()).isEmpty)

        _ = try await broker.beginTask(try Self.ledgerTask(), client: client())
        #expect(broker.halt(by: client(pid: 1), reason: nil).tasksEnded == 1)
        do {
            _ = try await broker.beginTask(try Self.ledgerTask(), client: client())
            Issue.record("a task began while paused")
        } catch let error as RPCError {
            #expect(error.data?["reason"] == "paused")
        }
    }

    @Test("the admin may lower the longest task (max_task_s); a user policy may not set it")
    func adminLimit() async throws {
        let sandbox = Sandbox()
        sandbox.writeAdmin("t.toml", "max_task_s = 600\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("approve_task"))
        try broker.registerHelper(helper)
        do {
            _ = try await broker.beginTask(try Self.ledgerTask(expires: 601), client: client())
            Issue.record("a task longer than max_task_s began")
        } catch let error as RPCError {
            #expect(error.code == .invalidParams && error.data?["maximum"] == 600)
        }
        #expect(helper.callCount == 0)
        _ = try await broker.beginTask(try Self.ledgerTask(expires: 600), client: client())
        sandbox.writeUser("max_task_s = 60\n")
        #expect(makeBroker(sandbox).policyStatus.errors.joined().contains("administrator"))
    }

    @Test("scope entries: app_exe required and exact, no *, no admin or control, unknown keys refused")
    func scopeValidation() throws {
        let bad: [JSONValue] = [
            ["actions": ["write"]],
            ["actions": ["write"], "app_exe": "ledger"],
            ["actions": ["write"], "app_exe": "/usr/bin/*"],
            ["actions": ["*"], "app_exe": "/usr/bin/ledger"],
            ["actions": ["admin"], "app_exe": "/usr/bin/ledger"],
            ["actions": ["broker.resume"], "app_exe": "/usr/bin/ledger"],
            ["actions": ["audit.query"], "app_exe": "/usr/bin/ledger"],
            ["actions": [], "app_exe": "/usr/bin/ledger"],
            ["actions": ["write"], "app_exe": "/usr/bin/ledger", "client_exe": "/usr/bin/x"],
            ["actions": ["write"], "app_exe": "/usr/bin/ledger", "max": 0],
        ]
        for json in bad {
            #expect(throws: RPCError.self, "\(JSONWriter.string(json))") { _ = try Self.entry(json) }
        }
        let good = try Self.entry(["actions": ["write", "element.activate"], "app_exe": "/usr/bin/ledger", "name": "Pay*"])
        #expect(good.actionClasses == [.write] && good.actionMethods == ["element.activate"])
    }
}
