#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import Synchronization
import Testing
import TestSupport

/// Steps shared by the end-to-end suites that drive a real daemon against real apps.
enum Flows {
    /// Starts a fixture and waits until `daemon` lists it (its policy must let the test observe
    /// fixtures: listings never prompt).
    static func launch(_ daemon: DaemonProcess, kind: String = "gtk3", name: String? = nil, arguments: [String] = [],
                       detached: Bool = false) async throws -> FixtureProcess {
        let app = try FixtureProcess(kind, name: name, arguments: arguments, detached: detached)
        #expect(app.waitForLine("ready", timeout: 30), "fixture did not start")
        let client = try await daemon.client()
        defer { client.closeNow() }
        for _ in 0..<200 {
            if let apps = try? await client.call("apps.list"), let entry = apps.arrayValue?.first(where: { $0["name"]?.stringValue == app.name }) {
                if detached, let pid = entry["pid"]?.intValue { app.adopt(pid: Int32(pid)) }
                return app
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("\(app.name) never appeared in apps.list")
    }

    /// The ref of the first element of `app` with this role (and name).
    static func ref(_ client: DeskgateClient, app: String, role: String, name: String? = nil) async throws -> String {
        var params: JSONObject = ["app": .string(app), "role": .string(role)]
        if let name { params["name"] = .string(name) }
        let found = try await client.call("elements.find", .object(params))
        guard let ref = found["nodes"]?.arrayValue?.first?["ref"]?.stringValue else { throw TestFailure("no \(role) \(name ?? "") in \(app)") }
        return ref
    }

    /// Decision and outcome records of one method, grouped by request id, in order.
    static func records(_ daemon: DaemonProcess, method: String) -> [(decision: JSONValue?, outcome: JSONValue?)] {
        var byID: [String: (decision: JSONValue?, outcome: JSONValue?)] = [:]
        var order: [String] = []
        for record in daemon.auditRecords() where record["method"]?.stringValue == method {
            guard let id = record["request_id"]?.stringValue else { continue }
            if byID[id] == nil { order.append(id); byID[id] = (nil, nil) }
            switch record["kind"]?.stringValue {
            case "decision":
                #expect(byID[id]?.decision == nil, "two decision records for \(id)")
                byID[id]?.decision = record
            case "outcome":
                #expect(byID[id]?.outcome == nil, "two outcome records for \(id)")
                byID[id]?.outcome = record
            default: break
            }
        }
        return order.compactMap { byID[$0] }
    }

    /// Calls `method` and returns the error it must fail with.
    static func failure(_ client: DeskgateClient, _ method: String, _ params: JSONValue,
                        sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
        do {
            let result = try await client.call(method, params)
            Issue.record("\(method) succeeded: \(JSONWriter.string(result))", sourceLocation: sourceLocation)
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            Issue.record("\(method) failed with \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// Polls `condition` every 50 ms for up to `timeout` seconds.
    static func eventually(timeout: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }
}

/// The `event` notifications a client received, collected as they arrive.
final class EventLog: Sendable {
    private final class Store: Sendable {
        let events = Mutex<[JSONValue]>([])
    }

    private let store = Store()
    private let task: Task<Void, Never>

    init(_ client: DeskgateClient) {
        let store = self.store
        task = Task {
            for await message in client.incoming {
                guard case .notification(let notification) = message, notification.method == "event" else { continue }
                store.events.withLock { $0.append(notification.params ?? .null) }
            }
        }
    }

    var all: [JSONValue] { store.events.withLock { $0 } }

    func contains(_ predicate: (JSONValue) -> Bool) -> Bool { store.events.withLock { $0.contains(where: predicate) } }

    deinit { task.cancel() }
}

/// A process started for a test whose output goes to a file (so that what its detached children
/// print lands there too), read line by line.
final class LoggedProcess: Sendable {
    let process: Process
    let logPath: String

    /// Runs `command` (through `wrapper`, e.g. a ``TestCgroup``'s) with stdout and stderr appended to `logPath`.
    init(_ command: [String], wrapper: [String] = [], logPath: String) throws {
        self.logPath = logPath
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let full = wrapper + command
        process = Process()
        process.executableURL = URL(fileURLWithPath: full[0])
        process.arguments = Array(full.dropFirst())
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var lines: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The first line starting with one of `prefixes`, waiting up to `timeout` seconds for it.
    func line(startingWith prefixes: String..., timeout: Double = 30) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let line = lines.first(where: { line in prefixes.contains { line.hasPrefix($0) } }) { return line }
            usleep(20_000)
        } while Date() < deadline
        return nil
    }

    /// Waits for exit (the fixtures bound their own waits) and returns the output lines.
    func finish() -> [String] {
        process.waitUntilExit()
        return lines
    }

    /// SIGKILL: children of the test runner inherit its blocked signal mask (SIGTERM included).
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Processes laid out as on a desktop: the prompt helper in a cgroup of its own (as
/// deskgate-prompt.service runs), agents in another, apps in the test's. A helper is never asked
/// by a client that may have started it, and apps the helper may have started are off limits.
struct DesktopLayout {
    let cgroups: TestCgroup
    let helperGroup: TestCgroup
    let agentGroup: TestCgroup
    let helper: LoggedProcess

    /// Starts `Tests/Fixtures/prompt_helper.py` (which must be allowed by the daemon's
    /// `prompt_agents`) with `helperArguments` and waits until it registered.
    init(_ name: String, daemon: DaemonProcess, helperArguments: [String]) throws {
        cgroups = try TestCgroup(name)
        helperGroup = try cgroups.child("helper")
        agentGroup = try cgroups.child("agent")
        helper = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/prompt_helper.py", daemon.socketPath]
                                       + helperArguments,
                                   wrapper: helperGroup.wrapper, logPath: daemon.directory.file("helper-\(name).log"))
        #expect(helper.line(startingWith: "registered", "refused")?.hasPrefix("registered") == true, "\(helper.lines)")
    }

    /// Stops the helper and removes the cgroups.
    func stop() {
        helper.stop()
        cgroups.remove()
    }
}
