#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import TestSupport
import Testing

/// Task sessions against a real daemon, a real GTK3 app, a scripted prompt helper and a scripted
/// agent process (a task belongs to one client process).
@Suite("Task sessions end to end", .serialized, .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct TaskFlowTests {
    @Test("one approval, 20 actions inside the scope, one prompt; outside it the person is asked; an admin deny inside it still denies; another client gets nothing; the task ends with its client; audit query --task finds it all")
    func taskEndToEnd() async throws {
        let cli = BuiltProducts.path("deskgate")
        let daemon = try DaemonProcess(userPolicy: """
            [[rule]]
            id = "look"
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            [[rule]]
            id = "cli-admin"
            effect = "allow"
            actions = ["admin"]
            client_exe = "\(cli)"
            """, adminPolicy: """
            prompt_agents = ["/usr/bin/python3"]
            [[rule]]
            id = "no-remove"
            effect = "deny"
            actions = ["act"]
            name = "Remove row"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        // The person approves the task and denies the one request outside it.
        let desktop = try DesktopLayout("task", daemon: daemon, helperArguments: ["--answer", "approve_task", "--answer", "deny"])
        defer { desktop.stop() }
        let looker = try await daemon.client()
        defer { looker.closeNow() }
        let exe = try #require(try await looker.call("apps.list").arrayValue?.first { $0["name"]?.stringValue == app.name }?["exe"]?.stringValue)
        let submit = try await Flows.ref(looker, app: app.name, role: "push button", name: "Submit")
        let remove = try await Flows.ref(looker, app: app.name, role: "push button", name: "Remove row")

        var calls: [JSONValue] = [["task.begin", ["title": "Submit the form ten times", "expires_in_s": 600, "max_actions": 25,
                                                  "scope": [["actions": ["element.activate"], "app_exe": .string(exe)],
                                                            ["actions": ["write"], "app_exe": .string(exe), "name": "Name"]]]]]
        for i in 0..<10 {
            calls.append(["element.activate", ["ref": .string(submit)]])
            calls.append(["field.fill", ["app": .string(app.name), "field": "Name", "value": .string("Ada \(i)")]])
        }
        calls.append(["field.fill", ["app": .string(app.name), "field": "Email", "value": "x@example.org"]])  // outside: asks
        calls.append(["element.activate", ["ref": .string(remove)]])  // inside, but the admin denies
        calls.append(["task.status", ["task_id": "$task"]])
        let agent = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/task_agent.py", daemon.socketPath,
                                       JSONWriter.string(.array(calls))],
                                      wrapper: desktop.agentGroup.wrapper, logPath: daemon.directory.file("task-agent.log"))
        defer { agent.stop() }
        #expect(agent.line(startingWith: "done", "closed", timeout: 90) == "done", "\(agent.lines.suffix(3))")
        let replies = agent.lines.filter { $0.hasPrefix("reply ") }.map { line -> JSONValue in
            let json = line.split(separator: " ", maxSplits: 2).last.map(String.init) ?? ""
            return (try? JSONParser.parse(json)) ?? .null
        }
        try #require(replies.count == calls.count, "\(agent.lines.suffix(5))")
        let taskID = try #require(replies[0]["result"]?["task_id"]?.stringValue, "\(replies[0])")
        for reply in replies[1...20] {
            #expect(reply["result"] != nil, "\(reply)")
        }
        #expect(replies[21]["error"]?["data"]?["reason"] == "user_denied", "\(replies[21])")
        #expect(replies[22]["error"]?["data"]?["reason"] == "locked_down", "\(replies[22])")
        #expect(replies[23]["result"]?["tasks"]?.arrayValue?.first?["actions_used"] == 20, "\(replies[23])")
        // Exactly two prompts: the task, and the request outside it.
        let prompts = desktop.helper.lines.filter { $0.hasPrefix("prompt ") }
            .compactMap { try? JSONParser.parse(String($0.dropFirst("prompt ".count))) }
        #expect(prompts.count == 2, "\(prompts.map { JSONWriter.string($0).prefix(120) })")
        #expect(prompts.first?["kind"] == "task")
        #expect(prompts.first?["scope"]?.arrayValue?.count == 2)
        #expect(app.output.filter { $0 == "clicked Submit" }.count == 10)
        #expect(!app.output.contains("clicked Remove row"))
        #expect(!app.output.contains { $0.hasPrefix("text-changed email") })

        // Another client process gets nothing from it.
        let stranger = try daemon.callFromPython("field.fill", ["app": .string(app.name), "field": "Name", "value": "Eve", "interactive": false],
                                                 wrapper: desktop.agentGroup.wrapper)
        #expect(stranger["error"]?["data"]?["reason"] == "would_prompt", "\(stranger)")

        // The person sees it, with its counters.
        let listed = try CLI.run(["--socket", daemon.socketPath, "grants", "list", "--json"])
        let tasks = (try? JSONParser.parse(listed.stdout))?["tasks"]?.arrayValue ?? []
        #expect(tasks.count == 1 && tasks.first?["task_id"] == .string(taskID), "\(listed.output)")

        // The task dies with its client.
        agent.stop()
        #expect(await Flows.eventually {
            let now = try? CLI.run(["--socket", daemon.socketPath, "grants", "list", "--json"])
            return (try? JSONParser.parse(now?.stdout ?? ""))?["tasks"]?.arrayValue?.isEmpty == true
        }, "the task outlived its client")

        // audit query --task: its begin and end, the 20 requests it allowed and their outcomes.
        let query = try CLI.run(["--socket", daemon.socketPath, "audit", "query", "--task", taskID, "--json"])
        let records = (try? JSONParser.parse(query.stdout))?["records"]?.arrayValue ?? []
        let decisions = records.filter { $0["kind"] == "decision" }
        #expect(decisions.count == 20, "\(query.output.prefix(400))")
        #expect(decisions.allSatisfy { $0["decision"]?["task"] == .string(taskID) && $0["decision"]?["effect"] == "allow" })
        #expect(records.filter { $0["kind"] == "outcome" }.count == 20)
        #expect(records.contains { $0["kind"] == "task_begin" })
        #expect(records.contains { $0["kind"] == "task_end" && $0["details"]?["why"] == "client_gone" })
    }

    @Test("max_actions ends the task with its last covered action; expiry ends the next one")
    func limitsEndTasks() async throws {
        let daemon = try DaemonProcess(userPolicy: "[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\napp = \"deskgate-e2e-*\"\n",
                                       adminPolicy: "prompt_agents = [\"/usr/bin/python3\"]\n")
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let desktop = try DesktopLayout("task-limits", daemon: daemon,
                                        helperArguments: ["--answer", "approve_task", "--answer", "approve_task"])
        defer { desktop.stop() }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(app.pid)/exe")
        let fill: JSONValue = ["field.fill", ["app": .string(app.name), "field": "Name", "value": "x", "interactive": false]]
        let scope: JSONValue = [["actions": ["write"], "app_exe": .string(exe), "name": "Name"]]
        // Two actions allowed: the third is outside the task (and would ask: refused, not interactive).
        let calls: [JSONValue] = [["task.begin", ["title": "two fills", "expires_in_s": 600, "max_actions": 2, "scope": scope]],
                                  fill, fill, fill, ["task.status", [:]],
                                  ["task.begin", ["title": "a short one", "expires_in_s": 2, "scope": scope]], fill]
        let agent = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/task_agent.py", daemon.socketPath,
                                       JSONWriter.string(.array(calls))],
                                      wrapper: desktop.agentGroup.wrapper, logPath: daemon.directory.file("task-limits.log"))
        defer { agent.stop() }
        #expect(agent.line(startingWith: "done", "closed", timeout: 60) == "done", "\(agent.lines.suffix(3))")
        func replies() -> [JSONValue] {
            agent.lines.filter { $0.hasPrefix("reply ") }.compactMap {
                try? JSONParser.parse($0.split(separator: " ", maxSplits: 2).last.map(String.init) ?? "")
            }
        }
        let first = replies()
        try #require(first.count == calls.count)
        #expect(first[1]["result"] != nil && first[2]["result"] != nil, "\(first[1]) \(first[2])")
        #expect(first[3]["error"]?["data"]?["reason"] == "would_prompt", "\(first[3])")
        #expect(first[4]["result"]?["tasks"]?.arrayValue?.isEmpty == true, "\(first[4])")
        #expect(first[6]["result"] != nil, "inside the short task: \(first[6])")
        // The expiry timer ends the short task by itself (a one-shot timer, no polling).
        let ends = daemon.auditRecords().filter { $0["kind"] == "task_end" }.compactMap { $0["details"]?["why"]?.stringValue }
        #expect(await Flows.eventually { daemon.auditRecords().filter { $0["kind"] == "task_end" }.count == 2 },
                "\(ends)")
        let reasons = Set(daemon.auditRecords().filter { $0["kind"] == "task_end" }.compactMap { $0["details"]?["why"]?.stringValue })
        #expect(reasons == ["max_actions", "expired"], "\(reasons)")
    }

    @Test("task.begin: an entry the admin forbids is refused before anyone is asked; an app that is not running is refused")
    func refusedAtBegin() async throws {
        let daemon = try DaemonProcess(userPolicy: "[[rule]]\neffect = \"allow\"\nactions = [\"observe\"]\napp = \"deskgate-e2e-*\"\n",
                                       adminPolicy: """
            prompt_agents = ["/usr/bin/python3"]
            [[rule]]
            id = "no-remove"
            effect = "deny"
            actions = ["act"]
            name = "Remove row"
            reason = "rows are kept"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let desktop = try DesktopLayout("task-refused", daemon: daemon, helperArguments: ["--answer", "approve_task"])
        defer { desktop.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(app.pid)/exe")
        let forbidden = await Flows.failure(client, "task.begin", ["title": "t", "expires_in_s": 60,
                                                                   "scope": [["actions": ["act"], "app_exe": .string(exe), "name": "Remove row"]]])
        #expect(forbidden?.data?["reason"] == "locked_down" && forbidden?.data?["rule"] == "no-remove", "\(String(describing: forbidden))")
        #expect(forbidden?.message.contains("rows are kept") == true)
        let absent = await Flows.failure(client, "task.begin", ["title": "t", "expires_in_s": 60,
                                                                "scope": [["actions": ["act"], "app_exe": "/usr/bin/no-such-app"]]])
        #expect(absent?.code == .appNotFound, "\(String(describing: absent))")
        let tooLong = await Flows.failure(client, "task.begin", ["title": "t", "expires_in_s": 28_801,
                                                                 "scope": [["actions": ["act"], "app_exe": .string(exe)]]])
        #expect(tooLong?.code == .invalidParams)
        #expect(!desktop.helper.lines.contains { $0.hasPrefix("prompt ") })
    }
}
