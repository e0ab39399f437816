#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import TestSupport
import Testing

/// The broker and audit log in front of real requests to a real daemon, against real apps.
@Suite("Gated and audited requests end to end", .serialized, .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct GatedFlowTests {
    static let allowFixtures = """
        default = "deny"
        [[rule]]
        id = "fixtures"
        effect = "allow"
        actions = ["observe", "read", "act", "write"]
        app = "deskgate-e2e-*"
        reason = "test fixtures"
        """

    /// Starts a fixture and waits until the daemon lists it.
    @Test("allowed write: the field is filled, one decision and one outcome are recorded, the value only as {len, hmac}")
    func allowedWrite() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let result = try await client.call("field.fill", ["app": .string(app.name), "field": "Name", "value": "Alice Canary"])
        #expect(result["matches"] == true)
        #expect(app.waitForLine("text-changed name"))
        let flows = Flows.records(daemon, method: "field.fill")
        #expect(flows.count == 1)
        #expect(flows.first?.decision?["decision"]?["effect"] == "allow")
        #expect(flows.first?.decision?["decision"]?["rule"] == "fixtures")
        #expect(flows.first?.outcome?["outcome"] == "ok")
        let value = flows.first?.decision?["target"]?["value"]
        #expect(value?["len"] == 12)
        #expect(value?["hmac"]?.stringValue?.count == 64)
        #expect(!String(decoding: daemon.allWrittenBytes(), as: UTF8.self).contains("Alice Canary"))
    }

    @Test("default deny: -32001 reason policy, recorded as a deny with its outcome, nothing touched")
    func policyDeny() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            id = "look-only"
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let submit = try await Flows.ref(client, app: app.name, role: "push button", name: "Submit")
        await #expect(throws: RPCError.self) { _ = try await client.call("element.activate", ["ref": .string(submit)]) }
        do {
            _ = try await client.call("element.activate", ["ref": .string(submit)])
        } catch let error as RPCError {
            #expect(error.code == .denied)
            #expect(error.data?["reason"] == "policy")
            #expect(error.data?["class"] == "act")
            #expect(error.message.contains("act on"))
        }
        #expect(!app.output.contains { $0.hasPrefix("clicked") })
        let flows = Flows.records(daemon, method: "element.activate")
        #expect(flows.count == 2)
        #expect(flows.allSatisfy { $0.decision?["decision"]?["effect"] == "deny" && $0.outcome?["outcome"] == -32001 })
    }

    @Test("password text: hard deny under an allow-all rule; a canary set into it appears in no reply, file or log")
    func passwordCanary() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let canary = "CANARY-\(UInt32.random(in: 0...UInt32.max))-pw"
        let field = try await Flows.ref(client, app: app.name, role: "password text")
        let set = try await client.call("text.set", ["ref": .string(field), "value": .string(canary)])
        #expect(set["matches"] == true)
        #expect(app.waitForLine("text-changed password"))
        var replies = [set]
        do {
            replies.append(try await client.call("text.read", ["ref": .string(field)]))
            Issue.record("password text was readable")
        } catch let error as RPCError {
            #expect(error.data?["reason"] == "hard_deny")
            replies.append(error.json)
        }
        replies.append(try await client.call("tree.snapshot", ["app": .string(app.name), "include": ["text", "value"]]))
        replies.append(try await client.call("tree.snapshot", ["app": .string(app.name), "format": "outline"]))
        replies.append(try await client.call("element.get", ["ref": .string(field)]))
        for reply in replies { #expect(!JSONWriter.string(reply).contains(canary)) }
        let written = String(decoding: daemon.allWrittenBytes(), as: UTF8.self)
        #expect(!written.contains(canary))
        let flows = Flows.records(daemon, method: "text.set")
        #expect(flows.first?.decision?["target"]?["value"]?["len"] == .int(Int64(canary.count)))
        #expect(flows.first?.decision?["target"]?["value"]?["hmac"] == nil, "password fields: length only")
    }

    @Test("a sensitive app is invisible and denied even under an allow-all rule")
    func sensitiveApp() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            effect = "allow"
            actions = ["observe", "read", "act", "write"]
            """)
        defer { daemon.stop() }
        let normal = try await Flows.launch(daemon)
        let vault = try FixtureProcess("gtk3", name: "KeePassXC")
        #expect(vault.waitForLine("ready", timeout: 30))
        try await Task.sleep(for: .seconds(2))
        let client = try await daemon.client()
        defer { client.closeNow() }
        let names = try await client.call("apps.list").arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names.contains(normal.name))
        #expect(!names.contains("KeePassXC"))
        do {
            _ = try await client.call("tree.snapshot", ["app": "KeePassXC"])
            Issue.record("sensitive app snapshot allowed")
        } catch let error as RPCError {
            #expect(error.code == .denied || error.code == .appNotFound)
        }
    }

    @Test("prompt through a registered helper: allow_once passes once, deny and timeout deny; all audited")
    func promptFlows() async throws {
        let daemon = try DaemonProcess(arguments: ["--prompt-timeout", "6"], userPolicy: """
            default = "deny"
            [[rule]]
            id = "observe"
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            [[rule]]
            id = "ask-writes"
            effect = "ask"
            actions = ["write"]
            app = "deskgate-e2e-*"
            """, adminPolicy: "prompt_agents = [\"/usr/bin/python3\"]\n")
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        // The helper answers each prompt from a queue of choices; "none" means never answer.
        let desktop = try DesktopLayout("gated-prompt", daemon: daemon,
                                        helperArguments: ["--answer", "allow_once", "--answer", "deny", "--answer", "none"])
        defer { desktop.stop() }
        let helper = desktop.helper
        let helperGroup = desktop.helperGroup
        let agentGroup = desktop.agentGroup
        // A second helper is refused.
        let second = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/prompt_helper.py", daemon.socketPath],
                                       wrapper: helperGroup.wrapper, logPath: daemon.directory.file("second-helper.log"))
        let refusal = second.line(startingWith: "registered", "refused")
        #expect(refusal?.hasPrefix("refused") == true && refusal?.contains("already registered") == true, "\(refusal ?? "-")")
        second.stop()

        let fill: JSONValue = ["app": .string(app.name), "field": "Email", "value": "a@example.org"]
        let allowed = try daemon.callFromPython("field.fill", fill, wrapper: agentGroup.wrapper)
        #expect(allowed["result"]?["matches"] == true, "\(allowed)")
        let denied = try daemon.callFromPython("field.fill", fill, wrapper: agentGroup.wrapper)
        #expect(denied["error"]?["data"]?["reason"] == "user_denied", "\(denied)")
        let timedOut = try daemon.callFromPython("field.fill", fill, wrapper: agentGroup.wrapper)
        #expect(timedOut["error"]?["data"]?["reason"] == "timeout", "\(timedOut)")

        // The prompt shows the verified identity and never the value being typed.
        let prompts = helper.lines.filter { $0.hasPrefix("prompt ") }.compactMap { try? JSONParser.parse(String($0.dropFirst("prompt ".count))) }
        #expect(prompts.count == 3)
        #expect(prompts.first?["client"]?["exe"]?.stringValue?.contains("python3") == true)
        #expect(prompts.allSatisfy { !JSONWriter.string($0).contains("a@example.org") })
        // An explicit ask rule offers no remembering.
        let choices = prompts.first?["choices"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(Set(choices) == ["deny", "allow_once"])

        let flows = Flows.records(daemon, method: "field.fill")
        #expect(flows.count == 3)
        #expect(flows.map { $0.decision?["decision"]?["effect"]?.stringValue } == ["allow", "deny", "deny"])
        #expect(flows.map { $0.outcome?["outcome"] } == ["ok", -32001, -32001])
    }

    @Test("interactive: false never prompts: would_prompt")
    func nonInteractive() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            [[rule]]
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        do {
            _ = try await client.call("field.fill", ["app": .string(app.name), "field": "Name", "value": "x", "interactive": false])
            Issue.record("write allowed without a rule")
        } catch let error as RPCError {
            #expect(error.data?["reason"] == "would_prompt")
        }
        do {
            _ = try await client.call("field.fill", ["app": .string(app.name), "field": "Name", "value": "x"])
            Issue.record("write allowed without a rule")
        } catch let error as RPCError {
            #expect(error.data?["reason"] == "no_agent")
        }
    }

    @Test("a client that exec'd another program after connecting is refused and dropped")
    func execAfterConnect() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let reply = try daemon.callFromPython("field.fill", ["app": .string(app.name), "field": "Name", "value": "exec"], execSocat: true)
        #expect(reply["error"]?["code"] == -32001, "\(reply) daemon log: \(daemon.log.suffix(3000))")
        #expect(reply["error"]?["message"]?.stringValue?.contains("executable changed") == true)
        #expect(!app.output.contains { $0.hasPrefix("text-changed name") })
    }

    @Test("the whole request path runs under the unit's SystemCallFilter; any call outside it would kill the daemon")
    func underTheUnitsSystemCallFilter() async throws {
        // seccomp_exec.py expands the unit's own SystemCallFilter= with systemd-analyze and loads
        // it with KILL_PROCESS as the default action (the unit says EPERM; killing makes every
        // refused call visible, not only the ones that would break something).
        let launcher = ["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/seccomp_exec.py",
                        "--unit", BuiltProducts.packageRoot + "/systemd/deskgate.service", "--kill", "--"]
        let policy = Self.allowFixtures + "\n[[rule]]\nid = \"audit\"\neffect = \"allow\"\nactions = [\"admin\"]\n"
        let daemon = try DaemonProcess(arguments: ["--mdwe", "--read-timeout-ms", "300", "--request-deadline-ms", "2000"],
                                       wrapper: launcher, userPolicy: policy)
        defer { daemon.stop() }
        #expect(daemon.log.contains("seccomp_exec: "), "\(daemon.log)")
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        #expect(try await client.call("session.whoami")["pid"]?.intValue == Int64(getpid()))
        let snapshot = try await client.call("tree.snapshot", ["app": .string(app.name), "include": ["bounds", "actions", "text", "value"]])
        #expect((snapshot["nodes"]?.arrayValue?.count ?? 0) > 10)
        #expect(try await client.call("field.fill", ["app": .string(app.name), "field": "Name", "value": "Bob"])["matches"] == true)
        let submit = try await Flows.ref(client, app: app.name, role: "push button", name: "Submit")
        _ = try await client.call("element.activate", ["ref": .string(submit)])
        #expect(app.waitForLine("clicked Submit"))
        // A frozen app: timers, the hung-app path and the -32004 reply.
        kill(app.pid, SIGSTOP)
        do {
            _ = try await client.call("element.activate", ["ref": .string(submit)])
            Issue.record("frozen app answered")
        } catch let error as RPCError {
            #expect(error.code == .appNotResponding || error.code == .appNotFound)
        }
        kill(app.pid, SIGCONT)
        kill(daemon.pid, SIGHUP)
        #expect(try await client.call("audit.verify")["ok"] == true)
        _ = try await client.call("audit.query", ["limit": 5])
        client.closeNow()
        #expect(daemon.process.isRunning, "the filter killed the daemon: \(daemon.log)")
        let status = daemon.stop()
        #expect(daemon.process.terminationReason == .exit && status == 0, "status \(status): \(daemon.log)")
    }

    @Test("handler errors are recorded as outcomes with their codes; a frozen app fails before anything is decided")
    func errorOutcomes() async throws {
        let daemon = try DaemonProcess(arguments: ["--read-timeout-ms", "300", "--action-timeout-ms", "500", "--request-deadline-ms", "2000"],
                                       userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let submit = try await Flows.ref(client, app: app.name, role: "push button", name: "Submit")
        let spin = try await Flows.ref(client, app: app.name, role: "spin button")
        let noAction = await Flows.failure(client, "element.activate", ["ref": .string(submit), "action": "no-such-action"])
        #expect(noAction?.code == .notSupported)
        let outOfRange = await Flows.failure(client, "value.set", ["ref": .string(spin), "value": 1000])
        #expect(outOfRange?.code == .invalidValue)
        #expect(Flows.records(daemon, method: "element.activate").map { $0.outcome?["outcome"] } == [-32005])
        #expect(Flows.records(daemon, method: "value.set").map { $0.decision?["decision"]?["effect"] } == ["allow"])
        #expect(Flows.records(daemon, method: "value.set").map { $0.outcome?["outcome"] } == [-32006])

        // A frozen app cannot be resolved (its element is read live before the broker decides):
        // the request fails with -32004 and nothing is decided or done.
        kill(app.pid, SIGSTOP)
        defer { kill(app.pid, SIGCONT) }
        do {
            _ = try await client.call("element.activate", ["ref": .string(submit)])
            Issue.record("frozen app answered")
        } catch let error as RPCError {
            #expect(error.code == .appNotResponding || error.code == .appNotFound)
        }
        // Other work goes on while the app is frozen.
        #expect(try await client.call("daemon.ping") == "pong")
        kill(app.pid, SIGCONT)
        #expect(Flows.records(daemon, method: "element.activate").count == 1)
        #expect(!app.output.contains { $0.hasPrefix("clicked") })
    }
}
