#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import TestSupport
import Testing

/// The stop button against a real daemon, a real GTK3 app and a scripted prompt helper.
@Suite("Pause, resume and halt end to end", .serialized, .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct PauseFlowTests {
    static let policy = """
        [[rule]]
        id = "drive"
        effect = "allow"
        actions = ["observe", "act"]
        app = "deskgate-e2e-*"
        [[rule]]
        id = "ask-writes"
        effect = "ask"
        actions = ["write"]
        app = "deskgate-e2e-*"
        """
    static let helperAdmin = "prompt_agents = [\"/usr/bin/python3\"]\n"

    @Test("pause: a pending prompt ends as paused, a stream is withheld, every request is denied; an agent's resume asks the person; the pause survives a restart; the person's resume lifts it")
    func pauseAndResume() async throws {
        let state = TempDirectory("deskgate-pause-state")
        defer { state.remove() }
        var daemon = try DaemonProcess(arguments: ["--state-dir", state.path, "--prompt-timeout", "30"],
                                       userPolicy: Self.policy, adminPolicy: Self.helperAdmin)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        // Prompt 1 (the agent's fill) is never answered; prompt 2 (the agent's resume) is denied.
        var desktop = try DesktopLayout("pause", daemon: daemon, helperArguments: ["--answer", "none", "--answer", "deny"])
        defer { desktop.stop() }

        let driver = try await daemon.client()
        defer { driver.closeNow() }
        let submit = try await Flows.ref(driver, app: app.name, role: "push button", name: "Submit")
        let events = EventLog(driver)
        _ = try await driver.call("events.subscribe", ["events": ["state"]])
        try await SecurityTests.toggleUntilSeen(driver, app: app.name) { events.contains { $0["type"] == "state" } }

        // The agent's fill waits for a person.
        let agentGroup = desktop.agentGroup
        let socket = daemon
        let pending = Task.detached {
            try socket.callFromPython("field.fill", ["app": .string(app.name), "field": "Email", "value": "x@example.org"],
                                      wrapper: agentGroup.wrapper)
        }
        #expect(desktop.helper.line(startingWith: "prompt ") != nil, "\(desktop.helper.lines)")

        // Anyone pulls the brake, here the CLI with a reason.
        let paused = try CLI.run(["--socket", daemon.socketPath, "pause", "incident 7: wrong window"])
        #expect(paused.status == 0 && paused.stdout.contains("PAUSED") && paused.stdout.contains("incident 7"), "\(paused.output)")

        let fill = try await pending.value
        #expect(fill["error"]?["data"]?["reason"] == "paused", "\(fill)")
        #expect(desktop.helper.line(startingWith: "cancel ") != nil, "the helper was not told: \(desktop.helper.lines)")
        #expect(!app.output.contains { $0.hasPrefix("text-changed email") })
        #expect(await Flows.eventually { events.contains { $0["type"] == "withheld" } }, "\(events.all.suffix(3))")

        let refused: [(String, JSONValue)] = [("element.activate", ["ref": .string(submit)]),
                                              ("tree.snapshot", ["app": .string(app.name)])]
        for (method, params) in refused {
            let error = await Flows.failure(driver, method, params)
            #expect(error?.data?["reason"] == "paused", "\(method): \(String(describing: error))")
        }
        #expect(!app.output.contains { $0.hasPrefix("clicked") })
        let info = try CLI.run(["--socket", daemon.socketPath, "info"])
        #expect(info.stdout.hasPrefix("state: PAUSED") && info.stdout.contains("incident 7"), "\(info.output)")
        // The audit can be read during an incident: admin methods are not paused (no rule allows
        // them here, so the request that would ask is refused for that, not for the pause).
        let audit = await Flows.failure(driver, "audit.query", ["method": "broker.resume", "interactive": false])
        #expect(audit?.data?["reason"] == "would_prompt", "\(String(describing: audit))")

        // The agent tries to lift it: the person is asked (kind resume) and says no.
        let agentResume = try daemon.callFromPython("broker.resume", nil, wrapper: agentGroup.wrapper)
        #expect(agentResume["error"]?["data"]?["reason"] == "user_denied", "\(agentResume)")
        let resumePrompt = desktop.helper.lines.filter { $0.hasPrefix("prompt ") }.last
            .flatMap { try? JSONParser.parse(String($0.dropFirst("prompt ".count))) }
        #expect(resumePrompt?["kind"] == "resume")
        #expect(resumePrompt?["choices"] == ["deny", "resume"])
        #expect(try await driver.call("daemon.info")["broker"]?["pause"]?["paused"] == true)

        // A restart keeps the pause.
        desktop.stop()
        daemon.stop()
        daemon = try DaemonProcess(arguments: ["--state-dir", state.path], userPolicy: Self.policy, adminPolicy: Self.helperAdmin)
        let again = try await daemon.client()
        defer { again.closeNow() }
        let afterRestart = await Flows.failure(again, "tree.snapshot", ["app": .string(app.name)])
        #expect(afterRestart?.data?["reason"] == "paused", "\(String(describing: afterRestart))")

        // The person says resume: requests are decided by the policy again.
        desktop = try DesktopLayout("pause-resume", daemon: daemon, helperArguments: ["--answer", "resume"])
        // The person runs `deskgate resume` from a terminal of their own (not the helper's parent).
        let person = try desktop.cgroups.child("person")
        let resumed = try CLI.run(Array(person.wrapper.dropFirst()) + [BuiltProducts.path("deskgate"), "--socket", daemon.socketPath, "resume"],
                                  executable: person.wrapper[0])
        #expect(resumed.status == 0 && resumed.stdout.contains("resumed"), "\(resumed.output)")
        let snapshot = try await again.call("tree.snapshot", ["app": .string(app.name)])
        #expect(JSONWriter.string(snapshot).contains("Submit"), "\(JSONWriter.string(snapshot).prefix(200))")

        // Every step is in the audit log.
        let kinds = daemon.auditRecords(stateDirectory: state.path).compactMap { $0["kind"]?.stringValue }
        #expect(kinds.contains("pause") && kinds.contains("resume"), "\(kinds)")
    }

    @Test("deskgate-prompt --gui shows a Pause button while an agent is connected; pressing it pauses; it goes when the agents do")
    func pauseButton() async throws {
        let helperExe = BuiltProducts.path("deskgate-prompt")
        let daemon = try DaemonProcess(adminPolicy: "prompt_agents = [\"\(helperExe)\"]\n")
        defer { daemon.stop() }
        // The notification server lives on a session bus of the test's own.
        let bus = try SessionBus()
        defer { bus.stop() }
        let control = daemon.directory.file("notifications-control")
        let server = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/notifications.py", bus.address, control],
                                       logPath: daemon.directory.file("notifications.log"))
        defer { server.stop() }
        #expect(server.line(startingWith: "ready") != nil)
        let cgroups = try TestCgroup("pause-button")
        defer { cgroups.remove() }
        let helperGroup = try cgroups.child("helper")
        let helper = try LoggedProcess([helperExe, "--gui", "--socket", daemon.socketPath],
                                       wrapper: helperGroup.wrapper + ["/usr/bin/env", "DBUS_SESSION_BUS_ADDRESS=\(bus.address)"],
                                       logPath: daemon.directory.file("helper.log"))
        defer { helper.stop() }
        #expect(helper.line(startingWith: "deskgate-prompt: registered") != nil, "\(helper.lines)")
        #expect(!server.lines.contains { $0.hasPrefix("notify ") }, "a button with no agent connected")

        let agent = try await daemon.client()
        let shown = server.line(startingWith: "notify ")
        let notification = shown.flatMap { try? JSONParser.parse(String($0.split(separator: " ", maxSplits: 2)[2])) }
        #expect(notification?["actions"] == ["pause", "Pause"], "\(shown ?? "no notification")")
        #expect(notification?["expire_timeout"] == 0)
        #expect(notification?["hints"]?.arrayValue?.contains("resident") == true)

        try "click pause".write(toFile: control, atomically: true, encoding: .utf8)
        #expect(await Flows.eventually { (try? await agent.call("daemon.info"))?["broker"]?["pause"]?["paused"] == true },
                "\(helper.lines.suffix(3))")
        let pause = try await agent.call("daemon.info")["broker"]?["pause"]
        #expect(pause?["by"]?["exe"] == .string(helperExe))

        agent.closeNow()
        #expect(server.line(startingWith: "close ") != nil, "the button stayed after the last agent left: \(server.lines)")
    }

    @Test("halt: paused, and remembered grants are gone")
    func halt() async throws {
        // Writes ask by default here, so the person may remember their answer.
        let daemon = try DaemonProcess(userPolicy: "[[rule]]\nid = \"drive\"\neffect = \"allow\"\nactions = [\"observe\", \"act\"]\napp = \"deskgate-e2e-*\"\n",
                                       adminPolicy: Self.helperAdmin)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let desktop = try DesktopLayout("halt", daemon: daemon, helperArguments: ["--answer", "allow_always"])
        defer { desktop.stop() }
        let fill: JSONValue = ["app": .string(app.name), "field": "Name", "value": "Ada"]
        let first = try daemon.callFromPython("field.fill", fill, wrapper: desktop.agentGroup.wrapper)
        #expect(first["result"]?["matches"] == true, "\(first)")
        let halted = try CLI.run(["--socket", daemon.socketPath, "halt", "stop everything"])
        #expect(halted.status == 0 && halted.stdout.contains("revoked 1 remembered grant"), "\(halted.output)")
        let denied = try daemon.callFromPython("field.fill", fill, wrapper: desktop.agentGroup.wrapper)
        #expect(denied["error"]?["data"]?["reason"] == "paused", "\(denied)")
        let grants = daemon.auditRecords().filter { $0["kind"] == "grant_revoked" }
        #expect(grants.count == 1)
    }
}
