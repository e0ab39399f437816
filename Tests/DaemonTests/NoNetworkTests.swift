#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import Synchronization
import Testing
import TestSupport

/// "Local only", proven: the daemon under the unit's own `RestrictAddressFamilies=` (applied for
/// real with seccomp, as systemd does), every socket the daemon and `deskgate-mcp` create traced,
/// and the filter shown to refuse a network socket.
@Suite("No network: the unit's address families applied, every socket traced", .serialized,
       .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct NoNetworkTests {
    static let unit = BuiltProducts.packageRoot + "/systemd/deskgate.service"
    static let seccompExec = DesktopEnvironment.fixturesDirectory + "/seccomp_exec.py"

    /// Reads, acts and streams on the fixtures without asking; writes ask the helper; audit reads
    /// are allowed.
    static let policy = """
        default = "deny"
        [[rule]]
        id = "fixtures"
        effect = "allow"
        actions = ["observe", "read", "act"]
        app = "deskgate-e2e-*"
        [[rule]]
        id = "ask-writes"
        effect = "ask"
        actions = ["write"]
        app = "deskgate-e2e-*"
        [[rule]]
        id = "audit"
        effect = "allow"
        actions = ["admin"]
        """
    static let admin = "prompt_agents = [\"/usr/bin/python3\"]\n"

    /// The whole request path against `daemon` (whose process is `pid`): whoami, events, a
    /// snapshot, an activation seen as an event, a write a person approves through the prompt
    /// helper, audit verify, SIGHUP, and SIGTERM (a clean exit, checked by `exited`).
    func drive(_ daemon: DaemonProcess, pid: Int32, app: FixtureProcess, name: String, exited: () -> Int32?) async throws {
        let desktop = try DesktopLayout(name, daemon: daemon, helperArguments: ["--answer", "allow_once"])
        defer { desktop.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        #expect(try await client.call("session.whoami")["pid"]?.intValue == Int64(getpid()))
        let events = EventLog(client)
        _ = try await client.call("events.subscribe", ["events": ["state"]])
        let snapshot = try await client.call("tree.snapshot", ["app": .string(app.name), "include": ["bounds", "actions", "text", "value"]])
        #expect((snapshot["nodes"]?.arrayValue?.count ?? 0) > 10)
        let subscribe = try await Flows.ref(client, app: app.name, role: "check box", name: "Subscribe")
        _ = try await client.call("element.activate", ["ref": .string(subscribe)])
        #expect(app.waitForLine("toggled Subscribe"))
        #expect(await Flows.eventually { events.contains { $0["type"] == "state" } }, "no state event")
        // A write that asks: the helper (a cgroup of its own) approves it once.
        let fill = try daemon.callFromPython("field.fill", ["app": .string(app.name), "field": "Email", "value": "a@example.org"],
                                             wrapper: desktop.agentGroup.wrapper)
        #expect(fill["result"]?["matches"] == true, "\(fill)")
        #expect(desktop.helper.lines.contains { $0.hasPrefix("prompt ") }, "the helper was never asked")
        #expect(try await client.call("audit.verify")["ok"] == true)
        kill(pid, SIGHUP)
        #expect(try await client.call("daemon.ping") == "pong")
        #expect(try await client.call("audit.verify")["ok"] == true)
        client.closeNow()
        kill(pid, SIGTERM)
        let status = exited()
        #expect(status == 0, "the daemon did not exit cleanly (status \(String(describing: status))): \(daemon.log.suffix(3000))")
    }

    @Test("the whole request path runs under the unit's RestrictAddressFamilies and SystemCallFilter, loaded in the daemon's process")
    func underTheUnitsAddressFamilies() async throws {
        // seccomp_exec.py applies the unit's RestrictAddressFamilies= (a socket() family outside
        // the list fails with EAFNOSUPPORT) and SystemCallFilter= (KILL: any other call would
        // end the daemon), then execs it: the daemon's process is the filtered one.
        let launcher = ["/usr/bin/python3", Self.seccompExec, "--unit", Self.unit, "--kill", "--"]
        let daemon = try DaemonProcess(wrapper: launcher, userPolicy: Self.policy, adminPolicy: Self.admin)
        defer { daemon.stop() }
        #expect(daemon.log.contains("socket families: AF_UNIX"), "\(daemon.log)")
        // The filter is in the daemon's own process, not only in a launcher.
        let status = (try? String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Seccomp:\t2"), "\(status)")
        #expect(Self.executable(of: daemon.pid).hasSuffix("/deskgated"))
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        try await drive(daemon, pid: daemon.pid, app: app, name: "no-network-filter") {
            let deadline = Date().addingTimeInterval(15)
            while daemon.process.isRunning && Date() < deadline { usleep(10_000) }
            guard !daemon.process.isRunning, daemon.process.terminationReason == .exit else { return nil }
            return daemon.process.terminationStatus
        }
    }

    @Test("the same filter refuses AF_INET, AF_INET6, AF_NETLINK and AF_PACKET sockets and allows AF_UNIX ones")
    func filterRefusesNetworkSockets() throws {
        let probe = """
            import errno, socket
            for name in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"]:
                try:
                    socket.socket(getattr(socket, name), socket.SOCK_RAW if name == "AF_PACKET" else socket.SOCK_DGRAM).close()
                    print(name, "ok")
                except OSError as e:
                    print(name, errno.errorcode.get(e.errno, e.errno))
            try:
                socket.socketpair(socket.AF_UNIX)
                print("socketpair ok")
            except OSError as e:
                print("socketpair", errno.errorcode.get(e.errno, e.errno))
            """
        func run(_ command: [String]) throws -> [String: String] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Dictionary(String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
        }
        // The control: without the filter this machine makes every one of them (as root).
        let free = try run(["/usr/bin/python3", "-c", probe])
        #expect(free["AF_INET"] == "ok" && free["AF_INET6"] == "ok" && free["AF_NETLINK"] == "ok", "\(free)")
        let filtered = try run(["/usr/bin/python3", Self.seccompExec, "--unit", Self.unit, "--", "/usr/bin/python3", "-c", probe])
        #expect(filtered["AF_UNIX"] == "ok" && filtered["socketpair"] == "ok", "\(filtered)")
        for family in ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"] {
            #expect(filtered[family] == "EAFNOSUPPORT", "\(family): \(filtered)")
        }
    }

    @Test("every socket the daemon and deskgate-mcp create on the whole request path is AF_UNIX (strace)")
    func everySocketTraced() async throws {
        let traces = TempDirectory("no-network-trace")
        defer { traces.remove() }
        let daemonTrace = traces.file("deskgated.trace")
        let strace = ["/usr/bin/strace", "-f", "-qq", "-e", "trace=socket,socketpair,connect", "-o"]
        let daemon = try DaemonProcess(wrapper: strace + [daemonTrace], userPolicy: Self.policy, adminPolicy: Self.admin)
        defer { daemon.stop() }
        // strace runs the daemon as its child: signals go to the daemon itself.
        let pid = try #require(Self.children(of: daemon.pid).first, "no daemon under strace")
        #expect(Self.executable(of: pid).hasSuffix("/deskgated"))
        // A stopped strace detaches: the daemon must not outlive a failed test.
        defer { if Self.executable(of: pid).hasSuffix("/deskgated") { kill(pid, SIGKILL) } }

        // deskgate-mcp, traced too, lists apps and snapshots one through the daemon.
        let mcpTrace = traces.file("deskgate-mcp.trace")
        let mcp = Process()
        mcp.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        mcp.arguments = strace + [mcpTrace, BuiltProducts.path("deskgate-mcp"), "--socket", daemon.socketPath]
        let input = Pipe()
        let output = Pipe()
        mcp.standardInput = input
        mcp.standardOutput = output
        mcp.standardError = FileHandle.nullDevice
        try mcp.run()
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let requests: [JSONValue] = [
            ["jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": ["protocolVersion": "2025-06-18", "capabilities": [:], "clientInfo": ["name": "no-network-test", "version": "1"]]],
            ["jsonrpc": "2.0", "method": "notifications/initialized"],
            ["jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ["name": "list_apps", "arguments": [:]]],
            ["jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": ["name": "snapshot", "arguments": ["app": .string(app.name)]]],
        ]
        let replies = Replies()
        let reader = Thread { [output, replies] in
            var buffer = Data()
            while true {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { return }
                buffer += chunk
                while let newline = buffer.firstIndex(of: 0x0A) {
                    if let reply = try? JSONParser.parse(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)) {
                        replies.lines.withLock { $0.append(reply) }
                    }
                    buffer = Data(buffer[buffer.index(after: newline)...])
                }
            }
        }
        reader.start()
        for request in requests { input.fileHandleForWriting.write(Data((JSONWriter.string(request) + "\n").utf8)) }
        // Replies come in order; the snapshot's is the last.
        // Notifications may come in between: wait for the snapshot's reply by its id.
        #expect(await Flows.eventually(timeout: 30) { replies.lines.withLock { $0.contains { $0["id"] == 3 } } },
                "\(replies.lines.withLock { $0 })")
        let last = replies.lines.withLock { $0.first { $0["id"] == 3 } }
        #expect(last?["id"] == 3 && last?["result"]?["isError"] != true, "\(String(describing: last))")
        try input.fileHandleForWriting.close()
        let mcpDeadline = Date().addingTimeInterval(10)
        while mcp.isRunning && Date() < mcpDeadline { usleep(10_000) }
        if mcp.isRunning { mcp.terminate() }
        mcp.waitUntilExit()

        try await drive(daemon, pid: pid, app: app, name: "no-network-strace") {
            let deadline = Date().addingTimeInterval(15)
            while daemon.process.isRunning && Date() < deadline { usleep(10_000) }
            // strace exits with its tracee's status.
            return daemon.process.isRunning ? nil : daemon.process.terminationStatus
        }
        for (name, path) in [("deskgated", daemonTrace), ("deskgate-mcp", mcpTrace)] {
            let families = try Self.families(inTrace: path)
            #expect(families.contains("AF_UNIX"), "\(name): the trace saw no socket at all: \(families)")
            #expect(families == ["AF_UNIX"], "\(name) made sockets of other families: \(families)")
        }
    }

    @Test("the trace reading sees every family a socket is made or connected with")
    func traceReading() {
        let trace = """
            101 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3
            101 connect(3, {sa_family=AF_UNIX, sun_path="/run/user/0/bus"}, 110) = 0
            102 socket(AF_INET6, SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 7
            102 connect(7, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0
            103 socketpair(AF_NETLINK, SOCK_DGRAM, 0, 0x7ffd) = -1 EAFNOSUPPORT (Address family not supported by protocol)
            """
        #expect(Self.families(in: trace) == ["AF_UNIX", "AF_INET6", "AF_INET", "AF_NETLINK"])
    }

    // MARK: - Helpers

    /// What a reader thread collects.
    final class Replies: Sendable {
        let lines = Mutex<[JSONValue]>([])
    }

    /// The address families of every `socket`, `socketpair` and `connect` call in an strace log.
    static func families(inTrace path: String) throws -> Set<String> {
        families(in: try String(contentsOfFile: path, encoding: .utf8))
    }

    static func families(in text: String) -> Set<String> {
        var families: Set<String> = []
        for line in text.split(separator: "\n") {
            for call in ["socket(", "socketpair("] {
                if let start = line.range(of: " " + call) ?? (line.hasPrefix(call) ? line.range(of: call) : nil) {
                    families.insert(String(line[start.upperBound...].prefix { $0 != "," && $0 != ")" }))
                }
            }
            if line.contains("connect("), let family = line.range(of: "sa_family=") {
                families.insert(String(line[family.upperBound...].prefix { $0 != "," && $0 != "}" }))
            }
        }
        return families
    }

    /// The pids of `pid`'s children (its threads' `children` files).
    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [Int32] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { Int32($0) }
        }
    }

    static func executable(of pid: Int32) -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
    }
}
