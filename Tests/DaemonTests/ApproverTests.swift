#if canImport(Glibc)
import Glibc
#endif
import Daemon
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import TestSupport
import Testing

/// The approver is never the asker: a prompt helper the requesting client may have started is
/// never sent its prompts, however it was detached (real daemon, real processes, real cgroups).
@Suite("A helper the asker may have started gets no prompt", .serialized)
struct ApproverTests {
    static let python = "/usr/bin/python3"
    static var fixtures: String { DesktopEnvironment.fixturesDirectory }

    /// No rules: every gated request asks; python3 may register as helper.
    func daemon() throws -> DaemonProcess {
        try DaemonProcess(adminPolicy: "prompt_agents = [\"\(Self.python)\"]\n")
    }

    func helperCommand(_ daemon: DaemonProcess) -> [String] {
        [Self.python, Self.fixtures + "/prompt_helper.py", daemon.socketPath, "--answer", "allow_once"]
    }

    /// The agent (spawn_approver.py) in `cgroup`: connects, starts the helper per `mode`, waits
    /// until it registered, asks for grants.list (admin class: asks a person). Returns the
    /// agent's pid, the helper's "registered PID" line and the reply.
    func ask(_ daemon: DaemonProcess, mode: String, in cgroup: TestCgroup, helperLog: String) throws -> (pid: Int32, helper: String?, reply: JSONValue?) {
        let agentLog = daemon.directory.file("agent-\(mode).log")
        let agent = try LoggedProcess([Self.python, Self.fixtures + "/spawn_approver.py", daemon.socketPath, mode, helperLog, "grants.list", "--"]
                                      + helperCommand(daemon), wrapper: cgroup.wrapper, logPath: agentLog)
        let lines = agent.finish()
        let helper = lines.first { $0.hasPrefix("helper ") }.map { String($0.dropFirst("helper ".count)) }
        let reply = lines.last { $0.hasPrefix("{") }.flatMap { try? JSONParser.parse($0) }
        return (agent.process.processIdentifier, helper, reply)
    }

    /// The registered helper per daemon.info: (registered, pid).
    func registeredHelper(_ daemon: DaemonProcess) async throws -> (Bool, Int64?) {
        let client = try await daemon.client()
        defer { client.closeNow() }
        let helper = try await client.call("daemon.info")["broker"]?["prompt_helper"]
        return (helper?["registered"]?.boolValue == true, helper?["pid"]?.intValue)
    }

    /// The denial an agent gets when its own helper is the only one: no_agent, and why.
    func expectNoPromptForOwnHelper(_ result: (pid: Int32, helper: String?, reply: JSONValue?), helperLog: String,
                                    because phrase: String, daemon: DaemonProcess) async throws {
        let registered = try #require(result.helper, "the helper never registered: \(daemon.log.suffix(2000))")
        #expect(registered.hasPrefix("registered "), "helper: \(registered)")
        let helperPid = Int64(registered.split(separator: " ").last ?? "")
        let reply = try #require(result.reply, "no reply")
        #expect(reply["error"]?["code"] == -32001, "\(reply)")
        #expect(reply["error"]?["data"]?["reason"] == "no_agent", "\(reply)")
        let message = reply["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("may have been started by the requesting client"), "\(message)")
        #expect(message.contains(phrase), "\(message)")
        // It was registered (and is the one the daemon knows), yet it saw nothing.
        let (isRegistered, pid) = try await registeredHelper(daemon)
        #expect(isRegistered && pid == helperPid, "daemon.info: \(isRegistered) \(pid ?? -1), helper \(registered)")
        let helperLines = (try? String(contentsOfFile: helperLog, encoding: .utf8)) ?? ""
        #expect(!helperLines.contains("prompt "), "the helper was prompted: \(helperLines)")
    }

    @Test("setsid -f: a helper the agent detached into a new session is not asked")
    func setsidHelper() async throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let cgroups = try TestCgroup("approver")
        defer { cgroups.remove() }
        let agentGroup = try cgroups.child("agent")
        let helperLog = daemon.directory.file("helper.log")
        let result = try ask(daemon, mode: "setsid", in: agentGroup, helperLog: helperLog)
        try await expectNoPromptForOwnHelper(result, helperLog: helperLog, because: "runs in the client's cgroup and started after it", daemon: daemon)
    }

    @Test("double fork: a helper re-parented away from the agent is not asked")
    func doubleForkedHelper() async throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let cgroups = try TestCgroup("approver")
        defer { cgroups.remove() }
        let agentGroup = try cgroups.child("agent")
        let helperLog = daemon.directory.file("helper.log")
        let result = try ask(daemon, mode: "double-fork", in: agentGroup, helperLog: helperLog)
        try await expectNoPromptForOwnHelper(result, helperLog: helperLog, because: "runs in the client's cgroup and started after it", daemon: daemon)
    }

    @Test("a helper the agent put in a cgroup below its own (double-forked there) is not asked")
    func helperInChildCgroup() async throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let cgroups = try TestCgroup("approver")
        defer { cgroups.remove() }
        let agentGroup = try cgroups.child("agent")
        let helperLog = daemon.directory.file("helper.log")
        let result = try ask(daemon, mode: "child-cgroup", in: agentGroup, helperLog: helperLog)
        try await expectNoPromptForOwnHelper(result, helperLog: helperLog, because: "runs in a cgroup below the client's", daemon: daemon)
        // It really ran below the agent's cgroup, not in it.
        let helperPid = try #require(result.helper.flatMap { Int32($0.split(separator: " ").last ?? "") })
        #expect(TestCgroup.cgroupPath(of: helperPid) == agentGroup.path + "/approver")
    }

    @Test("a helper started the proper way, in a sibling cgroup, after the agent, is asked and its answer counts")
    func helperInSiblingCgroup() async throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let cgroups = try TestCgroup("approver")
        defer { cgroups.remove() }
        let agentGroup = try cgroups.child("agent")
        let helperGroup = try cgroups.child("helper")
        let helperLog = daemon.directory.file("helper.log")
        let agentLog = daemon.directory.file("agent.log")
        // The agent first: the helper starts after it, so only the cgroups keep them apart.
        let agent = try LoggedProcess([Self.python, Self.fixtures + "/spawn_approver.py", daemon.socketPath, "none", helperLog, "grants.list"],
                                      wrapper: agentGroup.wrapper, logPath: agentLog)
        let helper = try LoggedProcess(helperCommand(daemon), wrapper: helperGroup.wrapper, logPath: helperLog)
        defer { helper.stop() }
        let lines = agent.finish()
        let reply = try #require(lines.last { $0.hasPrefix("{") }.flatMap { try? JSONParser.parse($0) }, "agent: \(lines)")
        #expect(reply["result"]?["rules"] != nil, "\(reply)")
        let prompt = try #require(helper.lines.first { $0.hasPrefix("prompt ") }, "helper: \(helper.lines)")
        let params = try JSONParser.parse(String(prompt.dropFirst("prompt ".count)))
        #expect(params["client"]?["pid"]?.intValue == Int64(agent.process.processIdentifier))
        #expect(params["action"]?["method"] == "grants.list")
    }

    @Test("a helper someone else started in the agent's cgroup after it is not asked either (why the helper needs a cgroup of its own)")
    func helperLaterInAgentsCgroup() async throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let cgroups = try TestCgroup("approver")
        defer { cgroups.remove() }
        let agentGroup = try cgroups.child("agent")
        let helperLog = daemon.directory.file("helper.log")
        let agent = try LoggedProcess([Self.python, Self.fixtures + "/spawn_approver.py", daemon.socketPath, "none", helperLog, "grants.list"],
                                      wrapper: agentGroup.wrapper, logPath: daemon.directory.file("agent.log"))
        let helper = try LoggedProcess(helperCommand(daemon), wrapper: agentGroup.wrapper, logPath: helperLog)
        defer { helper.stop() }
        let lines = agent.finish()
        let result = (agent.process.processIdentifier, lines.first { $0.hasPrefix("helper ") }.map { String($0.dropFirst("helper ".count)) },
                      lines.last { $0.hasPrefix("{") }.flatMap { try? JSONParser.parse($0) })
        try await expectNoPromptForOwnHelper(result, helperLog: helperLog, because: "runs in the client's cgroup and started after it", daemon: daemon)
    }
}

/// The helper's own dialogs are off limits however it detached them (needs the headless desktop).
@Suite("Apps the helper may have started are hard-denied", .serialized, .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct HelperAppsTests {
    @Test("the helper's setsid child's window is hard-denied; an app started elsewhere is served meanwhile")
    func helpersDetachedChildIsHardDenied() async throws {
        let daemon = try DaemonProcess(userPolicy: """
            [[rule]]
            id = "fixtures"
            effect = "allow"
            actions = ["observe", "read", "act", "write"]
            app = "deskgate-e2e-*"
            """, adminPolicy: "prompt_agents = [\"\(ApproverTests.python)\"]\n")
        defer { daemon.stop() }
        let cgroups = try TestCgroup("helper-apps")
        defer { cgroups.remove() }
        let helperGroup = try cgroups.child("helper")

        // An app the person started: in this test's cgroup, not the helper's.
        let other = try FixtureProcess("gtk3")
        defer { other.terminate() }
        #expect(other.waitForLine("ready", timeout: 30))

        // The helper, in a cgroup of its own, detaches a GTK3 window of its own with setsid -f.
        let dialog = "deskgate-e2e-dialog-\(UInt32.random(in: 0...UInt32.max))"
        let helper = try LoggedProcess([ApproverTests.python, ApproverTests.fixtures + "/prompt_helper.py", daemon.socketPath, "--spawn",
                                        ApproverTests.python, ApproverTests.fixtures + "/gtk3_app.py", "--rows", "0", "--name", dialog],
                                       wrapper: helperGroup.wrapper, logPath: daemon.directory.file("helper.log"))
        defer { helper.stop() }
        #expect(helper.line(startingWith: "registered")?.isEmpty == false, "helper: \(helper.lines)")
        #expect(helper.line(startingWith: "ready")?.isEmpty == false, "dialog: \(helper.lines)")
        // Detached: not the helper's descendant any more, but still in its cgroup.
        let dialogPid = try #require(helperGroup.pids.first { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains(dialog)
        })
        #expect(ProcessInspection.parentPID(of: dialogPid) != helper.process.processIdentifier)

        let client = try await daemon.client()
        defer { client.closeNow() }
        // Wait until the bus knows the dialog (apps.list must not show it, so ask for it by name).
        var outcome: Result<JSONValue, RPCError>?
        for _ in 0..<300 {
            do {
                outcome = .success(try await client.call("tree.snapshot", ["app": .string(dialog)]))
                break
            } catch let error as RPCError where error.code == .appNotFound {
                try await Task.sleep(for: .milliseconds(100))
            } catch let error as RPCError {
                outcome = .failure(error)
                break
            }
        }
        switch outcome {
        case .failure(let error):
            #expect(error.code == .denied)
            #expect(error.data?["reason"] == "hard_deny", "\(error)")
            #expect(error.message.contains("may have been started by the prompt helper"), "\(error.message)")
        case .success(let snapshot):
            Issue.record("the helper's detached window was served: \(JSONWriter.string(snapshot).prefix(300))")
        case nil:
            Issue.record("the dialog never appeared on the accessibility bus")
        }
        let listed = try await client.call("apps.list").arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(!listed.contains(dialog), "\(listed)")
        #expect(listed.contains(other.name), "\(listed)")
        let snapshot = try await client.call("tree.snapshot", ["app": .string(other.name)])
        #expect((snapshot["nodes"]?.arrayValue?.count ?? 0) > 5)
    }
}

/// The packaged ways to start the helper give it a cgroup of its own, so that it is always
/// eligible to answer and only its own dialogs are off limits.
@Suite("The packaged helper runs in a cgroup of its own")
struct PackagedHelperTests {
    @Test("deskgate-prompt.service passes systemd-analyze verify; the autostart entry starts the helper in a scope of its own")
    func units() throws {
        let dir = TempDirectory("prompt-units")
        defer { dir.remove() }
        let root = BuiltProducts.packageRoot
        for name in ["deskgate-prompt.service", "deskgate.service", "deskgate.socket"] {
            let text = try String(contentsOfFile: root + "/systemd/" + name, encoding: .utf8)
                .replacingOccurrences(of: "@BINDIR@", with: BuiltProducts.directory)
            try text.write(toFile: dir.file(name), atomically: true, encoding: .utf8)
        }
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_RUNTIME_DIR"] = dir.path
        let (status, output) = try run("/usr/bin/systemd-analyze", ["verify", "--user", dir.file("deskgate-prompt.service"),
                                                                    dir.file("deskgate.socket"), dir.file("deskgate.service")],
                                       environment: environment)
        #expect(status == 0, "\(output)")
        #expect(!output.contains("Unknown key"), "\(output)")
        let service = try String(contentsOfFile: dir.file("deskgate-prompt.service"), encoding: .utf8)
        #expect(service.contains("ExecStart=\(BuiltProducts.directory)/deskgate-prompt --gui"))

        // An autostart program otherwise shares the session's cgroup with every later app.
        let desktop = try String(contentsOfFile: root + "/systemd/deskgate-prompt.desktop", encoding: .utf8)
        let exec = try #require(desktop.split(separator: "\n").first { $0.hasPrefix("Exec=") }).dropFirst("Exec=".count)
        #expect(exec.hasPrefix("systemd-run --user --scope "), "\(exec)")
        #expect(exec.hasSuffix(" @BINDIR@/deskgate-prompt --gui"), "\(exec)")
        #expect(exec.split(separator: "\"").count == 3, "one quoted argument: \(exec)")
    }
}
