#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JSONRPC
import TestSupport
import Testing

/// A peer whose executable the daemon cannot read is unidentified and served nothing gated.
///
/// Real processes, no fakes: the daemon runs as an unprivileged user (nobody), and its client,
/// of the same uid, makes itself non-dumpable, which makes `/proc/PID/exe` unreadable to any
/// process without CAP_SYS_PTRACE. (As root, the daemon could read it regardless.)
@Suite("Unidentified peers", .serialized)
struct UnidentifiedPeerTests {
    static let nobody = "65534"

    /// deskgated as nobody with its own directories, an allow-everything user policy and python3
    /// listed in prompt_agents: only identity can make the difference.
    final class UnprivilegedDaemon: Sendable {
        let directory = TempDirectory("deskgate-unidentified")
        let process = Process()
        var socketPath: String { directory.file("run/deskgate.sock") }

        init() throws {
            for sub in ["run", "state", "config", "etc-policy.d"] {
                try FileManager.default.createDirectory(atPath: directory.file(sub), withIntermediateDirectories: true)
            }
            try "[[rule]]\nid = \"everything\"\neffect = \"allow\"\nactions = [\"*\"]\n"
                .write(toFile: directory.file("config/policy.toml"), atomically: true, encoding: .utf8)
            try "prompt_agents = [\"/usr/bin/python3\"]\n"
                .write(toFile: directory.file("etc-policy.d/00-admin.toml"), atomically: true, encoding: .utf8)
            let chown = Process()
            chown.executableURL = URL(fileURLWithPath: "/bin/chown")
            chown.arguments = ["-R", "\(UnidentifiedPeerTests.nobody):\(UnidentifiedPeerTests.nobody)", directory.path]
            try chown.run()
            chown.waitUntilExit()
            guard chown.terminationStatus == 0 else { throw TestFailure("chown failed") }

            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = UnidentifiedPeerTests.asNobody + [
                BuiltProducts.path("deskgated"), "--socket", socketPath, "--state-dir", directory.file("state"),
                "--config-dir", directory.file("config"), "--system-policy-dir", directory.file("etc-policy.d"),
                "--log-level", "debug", "--no-enable-accessibility",
            ]
            var environment = ProcessInfo.processInfo.environment
            for key in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC"] { environment.removeValue(forKey: key) }
            environment["HOME"] = directory.path
            process.environment = environment
            let log = directory.file("daemon.log")
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
            for _ in 0..<1000 where !FileManager.default.fileExists(atPath: socketPath) {
                guard process.isRunning else { throw TestFailure("deskgated exited: \(self.log)") }
                usleep(20_000)
            }
            guard FileManager.default.fileExists(atPath: socketPath) else { throw TestFailure("no socket: \(self.log)") }
        }

        var log: String { (try? String(contentsOfFile: directory.file("daemon.log"), encoding: .utf8)) ?? "" }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            directory.remove()
        }
    }

    static let asNobody = ["--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups", "--"]

    /// Runs nondumpable_call.py as nobody; returns its first line (whether its exe is hidden) and
    /// the replies, in order.
    func call(_ daemon: UnprivilegedDaemon, dumpable: Bool = false, _ calls: [(String, JSONValue?)]) throws -> (String, [JSONValue]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        var arguments = Self.asNobody + ["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/nondumpable_call.py"]
        if dumpable { arguments.append("--dumpable") }
        arguments.append(daemon.socketPath)
        for (method, params) in calls {
            arguments.append(method)
            if let params { arguments.append(JSONWriter.string(params)) }
        }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = text.split(separator: "\n").map(String.init)
        guard let first = lines.first else { throw TestFailure("no output from the client") }
        return (first, lines.dropFirst().compactMap { try? JSONParser.parse($0) })
    }

    @Test("a non-dumpable client of the daemon's uid is unidentified: every gated request is denied 'unidentified', it cannot register as helper")
    func nonDumpableClientIsDenied() throws {
        let daemon = try UnprivilegedDaemon()
        defer { daemon.stop() }

        // Control: the same client, dumpable, is identified and served under the same policy.
        let (visible, served) = try call(daemon, dumpable: true, [("session.whoami", nil), ("grants.list", nil)])
        #expect(visible.hasPrefix("exe visible: /usr/bin/python3"), "\(visible)")
        #expect(served.first?["result"]?["exe"]?.stringValue?.hasPrefix("/usr/bin/python3") == true, "\(served) \(daemon.log.suffix(1500))")
        #expect(served.last?["result"]?["rules"] != nil, "\(served)")

        let (hidden, replies) = try call(daemon, [
            ("session.whoami", nil), ("grants.list", nil), ("audit.query", ["limit": 1]), ("apps.list", nil), ("agent.register", nil),
            ("broker.check", ["method": "grants.list", "params": [:]]),
        ])
        // The premise, checked rather than assumed: a process of the same uid cannot read its exe.
        try #require(hidden.hasPrefix("exe hidden"), "prctl(PR_SET_DUMPABLE, 0) did not hide /proc/PID/exe: \(hidden)")
        try #require(replies.count == 6, "\(replies) \(daemon.log.suffix(1500))")
        // It is connected (not refused at accept), but has no executable.
        #expect(replies[0]["result"]?["exe"] == "", "\(replies[0])")
        for (index, method) in [(1, "grants.list"), (2, "audit.query"), (3, "apps.list")] {
            #expect(replies[index]["error"]?["code"] == -32001, "\(method): \(replies[index])")
            #expect(replies[index]["error"]?["data"]?["reason"] == "unidentified", "\(method): \(replies[index])")
        }
        #expect(replies[1]["error"]?["message"]?.stringValue?.contains("could not verify which program") == true, "\(replies[1])")
        #expect(replies[4]["error"]?["code"] == -32001, "agent.register: \(replies[4])")
        #expect(replies[4]["error"]?["data"]?["reason"] == "unidentified", "agent.register: \(replies[4])")
        #expect(replies[5]["result"]?["effect"] == "deny", "broker.check: \(replies[5])")
        #expect(replies[5]["result"]?["reason"] == "unidentified", "broker.check: \(replies[5])")
    }
}
