#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import Synchronization
import Testing
import TestSupport

/// The attacks on "one decision on one live target": each test drives a real daemon against a
/// real GTK3 app (no fakes between the socket and the app) and tries one way around the broker.
@Suite("Security: one decision on one live target", .serialized,
       .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct SecurityTests {
    static let allTypes: JSONValue = ["focus", "window", "children", "state", "name", "text"]

    static let allowFixtures = """
        default = "deny"
        [[rule]]
        id = "fixtures"
        effect = "allow"
        actions = ["observe", "read", "act", "write"]
        app = "deskgate-e2e-*"
        """

    static var testExe: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Fills the Name field until the stream in `log` shows a text event of `app`: apps learn of
    /// new listeners asynchronously, so a check that no event arrived must first see one arrive.
    static func primeTextEvents(_ writer: DeskgateClient, _ log: EventLog, app: String) async throws {
        for attempt in 0..<50 {
            _ = try await writer.call("field.fill", ["app": .string(app), "field": "Name", "value": .string("prime \(attempt)")])
            if await Flows.eventually(timeout: 0.3, { log.contains { $0["type"] == "text" } }) { return }
        }
        throw TestFailure("no text event ever arrived")
    }

    /// Toggles the Subscribe check box (as another client) until `seen` reports its state event.
    static func toggleUntilSeen(_ writer: DeskgateClient, app: String, seen: () -> Bool) async throws {
        let box = try await Flows.ref(writer, app: app, role: "check box", name: "Subscribe")
        for _ in 0..<50 {
            _ = try await writer.call("element.activate", ["ref": .string(box)])
            if await Flows.eventually(timeout: 0.3, { seen() }) { return }
        }
        throw TestFailure("no state event ever arrived")
    }

    // MARK: - Listings and streams are decided per app

    @Test("no policy and no helper: apps.list lists nothing and events.subscribe delivers nothing")
    func nothingWithoutPolicy() async throws {
        // A second daemon on the same bus, allowed everything, is the control: it proves the
        // app really sent the events the first one must not pass on.
        let observer = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { observer.stop() }
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let app = try await Flows.launch(observer)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let listed = try await client.call("apps.list").arrayValue ?? []
        #expect(listed.isEmpty, "apps listed without any rule: \(listed.compactMap { $0["name"]?.stringValue })")

        let events = EventLog(client)
        _ = try await client.call("events.subscribe", ["events": Self.allTypes])
        let control = try await observer.client()
        defer { control.closeNow() }
        let controlEvents = EventLog(control)
        _ = try await control.call("events.subscribe", ["events": Self.allTypes])
        try await Self.primeTextEvents(control, controlEvents, app: app.name)
        try await Self.toggleUntilSeen(control, app: app.name) { controlEvents.contains { $0["type"] == "state" } }
        try await Task.sleep(for: .milliseconds(300))
        #expect(events.all.isEmpty, "events delivered without any rule: \(events.all.prefix(5).map { JSONWriter.string($0) })")
    }

    @Test("a rule naming events.subscribe matches it, and broker.check says what the call does")
    func ruleNamingEventsSubscribe() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            id = "stream"
            effect = "allow"
            actions = ["events.subscribe"]
            app = "deskgate-e2e-*"
            [[rule]]
            id = "drive"
            effect = "allow"
            actions = ["apps.list", "elements.find", "act"]
            app = "deskgate-e2e-*"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let check = try await client.call("broker.check", ["method": "events.subscribe", "params": ["events": ["state"]]])
        #expect(check["effect"] == "allow", "\(check)")
        let events = EventLog(client)
        _ = try await client.call("events.subscribe", ["events": ["state"]])
        try await Self.toggleUntilSeen(client, app: app.name) { events.contains { $0["type"] == "state" } }
    }

    @Test("revoke_all ends a stream's view of an app at once, with a withheld notification")
    func revokeAllStopsStream() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            [[rule]]
            id = "drive"
            effect = "allow"
            actions = ["observe", "act"]
            client_exe = "\(Self.testExe)"
            app = "deskgate-e2e-*"
            """, adminPolicy: "prompt_agents = [\"/usr/bin/python3\"]\n")
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let desktop = try DesktopLayout("security-revoke", daemon: daemon, helperArguments: ["--answer", "allow_always"])
        defer { desktop.stop() }
        // A separate process asks for a snapshot (the person allows it always), then streams.
        let stream = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/event_stream.py",
                                        daemon.socketPath, "--snapshot", app.name, "state"],
                                       wrapper: desktop.agentGroup.wrapper, logPath: daemon.directory.file("stream.log"))
        defer { stream.stop() }
        #expect(stream.line(startingWith: "subscribed") != nil, "\(stream.lines) \(desktop.helper.lines)")
        let driver = try await daemon.client()
        defer { driver.closeNow() }
        func streamedStates() -> Int { stream.lines.filter { $0.contains("\"type\":\"state\"") }.count }
        try await Self.toggleUntilSeen(driver, app: app.name) { streamedStates() > 0 }

        #expect(try await driver.call("grants.revoke_all")["revoked"]?.intValue ?? 0 >= 1)
        #expect(await Flows.eventually { stream.lines.contains { $0.contains("\"type\":\"withheld\"") } }, "\(stream.lines.suffix(3))")
        let before = streamedStates()
        let control = EventLog(driver)
        _ = try await driver.call("events.subscribe", ["events": ["state"]])
        try await Self.toggleUntilSeen(driver, app: app.name) { control.contains { $0["type"] == "state" } }
        try await Task.sleep(for: .milliseconds(300))
        #expect(streamedStates() == before, "events kept flowing after revoke_all")
    }

    @Test("a policy reload ends a stream's view of an app at once, with a withheld notification")
    func reloadStopsStream() async throws {
        let drive = """
            [[rule]]
            id = "drive"
            effect = "allow"
            actions = ["observe", "act"]
            client_exe = "\(Self.testExe)"
            app = "deskgate-e2e-*"
            """
        let daemon = try DaemonProcess(userPolicy: drive + """

            [[rule]]
            id = "stream"
            effect = "allow"
            actions = ["observe"]
            client_exe = "/usr/bin/python3*"
            app = "deskgate-e2e-*"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let stream = try FixtureProcess(script: "event_stream.py", arguments: [daemon.socketPath, "state"])
        defer { stream.terminate() }
        #expect(stream.waitForLine("subscribed", timeout: 20), "\(stream.output)")
        let driver = try await daemon.client()
        defer { driver.closeNow() }
        func streamedStates() -> Int { stream.output.filter { $0.contains("\"type\":\"state\"") }.count }
        try await Self.toggleUntilSeen(driver, app: app.name) { streamedStates() > 0 }

        try drive.write(toFile: daemon.configDirectory + "/policy.toml", atomically: true, encoding: .utf8)
        kill(daemon.pid, SIGHUP)
        #expect(await Flows.eventually { stream.output.contains { $0.contains("\"type\":\"withheld\"") } }, "\(stream.output.suffix(3))")
        let before = streamedStates()
        let control = EventLog(driver)
        _ = try await driver.call("events.subscribe", ["events": ["state"]])
        try await Self.toggleUntilSeen(driver, app: app.name) { control.contains { $0["type"] == "state" } }
        try await Task.sleep(for: .milliseconds(300))
        #expect(streamedStates() == before, "events kept flowing after the reload")
    }

    // MARK: - Content is read, structure is observe

    @Test("typing into a password field produces no event at all, not even its length or timing")
    func passwordFieldIsSilent() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let title = "deskgate-security-\(UInt32.random(in: 0...UInt32.max))"
        let app = try await Flows.launch(daemon, arguments: ["--title", title])
        let client = try await daemon.client()
        defer { client.closeNow() }
        let events = EventLog(client)
        _ = try await client.call("events.subscribe", ["events": Self.allTypes])
        try await Self.primeTextEvents(client, events, app: app.name)
        let password = try await Flows.ref(client, app: app.name, role: "password text")
        let canary = "Canary\(UInt32.random(in: 100_000...999_999))Pw"
        _ = try await client.call("text.set", ["ref": .string(password), "value": .string(canary)])
        _ = try await client.call("field.fill", ["app": .string(app.name), "field": "Password", "value": .string(canary + "2")])
        // A person typing: real key presses into the focused password field.
        _ = try await client.call("element.focus", ["ref": .string(password)])
        let typed = try Self.run("/usr/bin/xdotool", ["search", "--sync", "--name", title, "windowactivate", "--sync", "%1",
                                                      "type", "--delay", "40", "hunter2x"])
        #expect(typed == 0, "xdotool failed")
        // Focusing selects the field's text, so the keys replace it: 8 characters at the end.
        #expect(app.waitForLine("text-changed password 8", timeout: 10), "\(app.output.suffix(5))")
        // Then a plain field: its events arrive after any the password field sent.
        let name = try await Flows.ref(client, app: app.name, role: "text")
        _ = try await client.call("text.set", ["ref": .string(name), "value": "after"])
        #expect(await Flows.eventually { events.contains { $0["ref"]?.stringValue == name && $0["type"] == "text" } })
        // Focusing it may be seen (focus and state events carry nothing typed); typing may not.
        let leaked = events.all.filter { $0["ref"]?.stringValue == password && ($0["type"] == "text" || $0["type"] == "name") }
        #expect(leaked.isEmpty, "events of the password field: \(leaked.prefix(5).map { JSONWriter.string($0) })")
        #expect(!events.all.contains { JSONWriter.string($0).contains(canary) })
    }

    @Test("observe only: no field text through any include, format, filter, element.get or event")
    func observeNeverYieldsContent() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            id = "look"
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            [[rule]]
            id = "python-reads-and-writes"
            effect = "allow"
            actions = ["observe", "read", "write"]
            client_exe = "/usr/bin/python3*"
            app = "deskgate-e2e-*"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let canary = "Canary\(UInt32.random(in: 100_000...999_999))Text"
        let filled = try daemon.callFromPython("field.fill", ["app": .string(app.name), "field": "Name", "value": .string(canary)])
        #expect(filled["result"]?["matches"] == true, "\(filled)")
        // Control: a client that may read does see it.
        let readerView = try daemon.callFromPython("tree.snapshot", ["app": .string(app.name), "format": "outline"])
        #expect(JSONWriter.string(readerView).contains(canary), "the reader's outline lacks the text: \(readerView)")

        let client = try await daemon.client()
        defer { client.closeNow() }
        var replies: [JSONValue] = []
        let json = try await client.call("tree.snapshot", ["app": .string(app.name), "include": ["bounds", "actions", "text", "value"]])
        replies.append(json)
        let nodes = json["nodes"]?.arrayValue ?? []
        let field = try #require(nodes.first { $0["role"] == "text" })
        #expect(field["text"] == nil)
        #expect(field["content_withheld"] == true, "\(field)")
        let spin = try #require(nodes.first { $0["role"] == "spin button" })
        #expect(spin["value"] == nil)
        #expect(spin["content_withheld"] == true, "\(spin)")
        replies.append(try await client.call("tree.snapshot", ["app": .string(app.name), "filter": "interactive", "include": ["text", "value"]]))
        let outline = try await client.call("tree.snapshot", ["app": .string(app.name), "format": "outline", "include": ["text"]])
        replies.append(outline)
        let fieldRef = try #require(field["ref"]?.stringValue)
        let line = outline["outline"]?.stringValue?.split(separator: "\n").first { $0.contains("[ref=\(fieldRef)]") }
        #expect(line?.hasSuffix(": [content withheld]") == true, "\(line ?? "no line")")
        let got = try await client.call("element.get", ["ref": .string(fieldRef)])
        replies.append(got)
        #expect(got["text"] == nil)
        #expect(got["content_withheld"] == true, "\(got)")
        replies.append(try await client.call("elements.find", ["app": .string(app.name), "role": "text"]))
        let denied = await Flows.failure(client, "text.read", ["ref": .string(fieldRef)])
        #expect(denied?.code == .denied)

        // Events: text changes need read; the stream stays open and carries structure.
        let events = EventLog(client)
        _ = try await client.call("events.subscribe", ["events": Self.allTypes])
        let control = try FixtureProcess(script: "event_stream.py", arguments: [daemon.socketPath, "text"])
        defer { control.terminate() }
        #expect(control.waitForLine("subscribed", timeout: 20))
        let second = canary + "Again"
        for _ in 0..<50 where !control.output.contains(where: { $0.contains(second) }) {
            _ = try daemon.callFromPython("field.fill", ["app": .string(app.name), "field": "Email", "value": .string(second)])
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(control.output.contains { $0.contains(second) }, "the reader's stream never saw the text")
        try await Task.sleep(for: .milliseconds(300))
        #expect(!events.contains { $0["type"] == "text" }, "text events reached an observe-only client")
        replies += events.all
        for reply in replies {
            let text = JSONWriter.string(reply)
            #expect(!text.contains(canary), "content leaked: \(text.prefix(300))")
        }
    }

    // MARK: - field.fill decides on the field it found

    @Test("field.fill with case and whitespace variants of a denied label is refused by that rule")
    func fillVariantsOfDeniedLabel() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures + """

            [[rule]]
            id = "no-email"
            effect = "deny"
            actions = ["write"]
            name = "Email"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        for variant in ["Email", "email", "EMAIL", " Email ", "email\t"] {
            let error = await Flows.failure(client, "field.fill", ["app": .string(app.name), "field": .string(variant), "value": "x@example.org"])
            #expect(error?.code == .denied, "\(variant): \(String(describing: error))")
            #expect(error?.data?["rule"] == "no-email", "\(variant): \(String(describing: error))")
        }
        // Control: the same client may fill another field.
        #expect(try await client.call("field.fill", ["app": .string(app.name), "field": "name", "value": "Ada"])["matches"] == true)
        #expect(app.waitForLine("text-changed name"))
        #expect(!app.output.contains { $0.hasPrefix("text-changed email") })
    }

    @Test("a role-scoped deny rule stops field.fill and text.set")
    func roleScopedDenyStopsFill() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures + """

            [[rule]]
            id = "no-text-fields"
            effect = "deny"
            actions = ["write"]
            role = "text"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let fill = await Flows.failure(client, "field.fill", ["app": .string(app.name), "field": "Name", "value": "Ada"])
        #expect(fill?.code == .denied)
        #expect(fill?.data?["rule"] == "no-text-fields", "\(String(describing: fill))")
        let field = try await Flows.ref(client, app: app.name, role: "text")
        let set = await Flows.failure(client, "text.set", ["ref": .string(field), "value": "Ada"])
        #expect(set?.data?["rule"] == "no-text-fields")
        #expect(!app.output.contains { $0.hasPrefix("text-changed") })
    }

    @Test("a password value filled by label is audited as its length only")
    func passwordFillAuditedAsLength() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let canary = "Canary\(UInt32.random(in: 100_000...999_999))Secret"
        let result = try await client.call("field.fill", ["app": .string(app.name), "field": "Password", "value": .string(canary)])
        #expect(result["matches"] == true)
        #expect(app.waitForLine("text-changed password \(canary.count)"))
        let flow = try #require(Flows.records(daemon, method: "field.fill").first)
        let target = flow.decision?["target"]
        #expect(target?["role"] == "password text", "\(String(describing: target))")
        #expect(target?["name"] == "Password")
        #expect(target?["value"] == ["len": .int(Int64(canary.count))], "\(String(describing: target))")
        #expect(!String(decoding: daemon.allWrittenBytes(), as: UTF8.self).contains(canary))
    }

    @Test("field.fill naming several fields: -32009 with candidates for an observer, a plain denial otherwise")
    func ambiguousField() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            id = "fixtures"
            effect = "allow"
            actions = ["observe", "write"]
            client_exe = "\(Self.testExe)"
            app = "deskgate-e2e-*"

            [[rule]]
            id = "python-writes"
            effect = "allow"
            actions = ["write"]
            client_exe = "/usr/bin/python3*"
            """)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon, arguments: ["--twin-email"])
        let client = try await daemon.client()
        defer { client.closeNow() }
        let error = await Flows.failure(client, "field.fill", ["app": .string(app.name), "field": "Email", "value": "x"])
        #expect(error?.code == .ambiguous)
        let candidates = error?.data?["candidates"]?.arrayValue ?? []
        #expect(candidates.count == 2)
        #expect(candidates.allSatisfy { $0["label"] == "Email" && $0["role"] == "text" && $0["ref"]?.stringValue != nil })
        // python3 may write but not observe the app: it learns nothing about its fields.
        let blind = try daemon.callFromPython("field.fill", ["app": .string(app.name), "field": "Email", "value": "x"])
        #expect(blind["error"]?["code"] == -32001, "\(blind)")
        #expect(blind["error"]?["data"]?["candidates"] == nil)
        #expect(!app.output.contains { $0.hasPrefix("text-changed email") })
    }

    // MARK: - The element acted on is the element decided on

    @Test("an element renamed between snapshot and action is refused with changed, and nothing is done")
    func renamedBeforeAction() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowFixtures)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let client = try await daemon.client()
        defer { client.closeNow() }
        let submit = try await Flows.ref(client, app: app.name, role: "push button", name: "Submit")
        kill(app.pid, SIGUSR1)
        #expect(app.waitForLine("renamed Submit"))
        let error = await Flows.failure(client, "element.activate", ["ref": .string(submit)])
        #expect(error?.code == .elementNotFound)
        #expect(error?.data?["reason"] == "changed", "\(String(describing: error))")
        try await Task.sleep(for: .milliseconds(200))
        #expect(!app.output.contains { $0.hasPrefix("clicked") })
        let outcomes = Flows.records(daemon, method: "element.activate").compactMap { $0.outcome?["outcome"] }
        #expect(outcomes == ["changed"], "\(outcomes)")
    }

    @Test("an element renamed while its prompt waited is refused with changed, and nothing is done")
    func renamedDuringPrompt() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            default = "deny"
            [[rule]]
            id = "look"
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            [[rule]]
            id = "ask-clicks"
            effect = "ask"
            actions = ["act"]
            app = "deskgate-e2e-*"
            """, adminPolicy: "prompt_agents = [\"/usr/bin/python3\"]\n")
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        let hold = daemon.directory.file("answer-now")
        let desktop = try DesktopLayout("security-rename", daemon: daemon, helperArguments: ["--answer", "allow_once", "--hold", hold])
        defer { desktop.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        let submit = try await Flows.ref(client, app: app.name, role: "push button", name: "Submit")
        let agent = desktop.agentGroup.wrapper
        let pending = Task.detached { try daemon.callFromPython("element.activate", ["ref": .string(submit)], wrapper: agent) }
        // While the person reads the prompt, the app changes the button; then they allow it.
        #expect(desktop.helper.line(startingWith: "prompt ") != nil, "\(desktop.helper.lines)")
        kill(app.pid, SIGUSR1)
        #expect(app.waitForLine("renamed Submit"))
        _ = FileManager.default.createFile(atPath: hold, contents: nil)
        let reply = try await pending.value
        #expect(reply["error"]?["code"] == -32003, "\(reply)")
        #expect(reply["error"]?["data"]?["reason"] == "changed", "\(reply)")
        try await Task.sleep(for: .milliseconds(200))
        #expect(!app.output.contains { $0.hasPrefix("clicked") })
        let flow = try #require(Flows.records(daemon, method: "element.activate").last)
        #expect(flow.decision?["decision"]?["choice"] == "allow_once")
        #expect(flow.outcome?["outcome"] == "changed")
    }

    /// Runs a program and returns its exit status.
    static func run(_ executable: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
