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
