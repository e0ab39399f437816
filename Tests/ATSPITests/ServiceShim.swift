import ATSPI
import Daemon
import JSONRPC

/// The service's typed operations as the wire shows them, for tests that compare JSON: each
/// call resolves its target live (as the daemon does) and then acts on it, so these tests go
/// through exactly the code the daemon runs, minus the broker.
extension AccessibilityService {
    func snapshotResult(app: String, root: String? = nil, maxDepth: Int? = nil, maxNodes: Int = 5000,
                        filter: SnapshotFilter = .all, format: SnapshotFormat = .json, include: SnapshotIncludes = [],
                        content: ContentDecider? = nil) async throws -> SnapshotResult {
        var target = try await resolveApp(app)
        if let root { target = try await resolveElement(ref: root, in: target) }
        return try await snapshot(target, options: SnapshotOptions(maxDepth: maxDepth, maxNodes: maxNodes, filter: filter,
                                                                   format: format, include: include), content: content)
    }

    func snapshot(app: String, root: String? = nil, maxDepth: Int? = nil, maxNodes: Int = 5000, filter: SnapshotFilter = .all,
                  format: SnapshotFormat = .json, include: SnapshotIncludes = [], content: ContentDecider? = nil) async throws -> JSONValue {
        try await snapshotResult(app: app, root: root, maxDepth: maxDepth, maxNodes: maxNodes, filter: filter, format: format,
                                 include: include, content: content).json
    }

    func find(app: String, role: String? = nil, name: String? = nil, nameContains: String? = nil, states: [String] = [],
              limit: Int = 100) async throws -> JSONValue {
        let found = try await find(try await resolveApp(app), role: role, name: name, nameContains: nameContains,
                                   states: states, limit: limit)
        return ["app": .string(found.app), "nodes": .array(found.nodes.map(\.json)), "truncated": .bool(found.truncated),
                "method": .string(found.method)]
    }

    func get(ref: String, content: Bool = true) async throws -> JSONValue {
        try await details(try await resolveElement(ref: ref), content: content).json
    }

    func readText(ref: String) async throws -> JSONValue {
        ["text": .string(try await readText(try await resolveElement(ref: ref)))]
    }

    func activate(ref: String, action: String? = nil) async throws -> JSONValue {
        let done = try await activate(try await resolveElement(ref: ref), action: action)
        return ["ok": .bool(done.performed), "action": .string(done.action), "states": JSONValue(done.states),
                "settled": .bool(done.settled)]
    }

    func focus(ref: String) async throws -> JSONValue {
        let done = try await focus(try await resolveElement(ref: ref))
        return ["ok": .bool(done.accepted), "states": JSONValue(done.states), "settled": .bool(done.settled)]
    }

    func setText(ref: String, value: String) async throws -> JSONValue {
        Self.json(try await setText(try await resolveElement(ref: ref), value: value))
    }

    func setValue(ref: String, value: Double) async throws -> JSONValue {
        let done = try await setValue(try await resolveElement(ref: ref), value: value)
        return ["ok": .bool(done.accepted), "value": .double(done.value), "settled": .bool(done.settled)]
    }

    func select(ref: String, choice: OptionChoice) async throws -> SelectResult {
        try await select(try await resolveElement(ref: ref), choice: choice)
    }

    func insertText(ref: String, value: String, at offset: Int? = nil) async throws -> JSONValue {
        Self.json(try await insertText(try await resolveElement(ref: ref), value: value, at: offset))
    }

    func scrollIntoView(ref: String) async throws -> ScrollResult {
        try await scrollIntoView(try await resolveElement(ref: ref))
    }

    func waitFor(app: String, _ query: ElementQuery, gone: Bool = false, timeoutMs: Int) async throws -> WaitResult {
        try await waitFor(try await resolveApp(app), query: query, gone: gone, timeout: .milliseconds(timeoutMs))
    }

    func fillField(app: String, field: String, value: String) async throws -> JSONValue {
        let target = try await resolveField(app: app, field: field)
        guard case .object(var object) = Self.json(try await setText(target, value: value)) else { return .null }
        object["ref"] = .string(target.element?.ref ?? "")
        return .object(object)
    }

    /// Events as `{type, app, ref, detail}`, as the daemon sends them.
    func subscribe(_ types: Set<String>, handler: @escaping @Sendable (JSONValue) -> Void) async throws -> SubscriptionID {
        try await subscribe(Set(types.compactMap(AccessibilityEvent.Kind.init(rawValue:)))) { event in
            handler(EventWire.json(event))
        }
    }

    /// The listing entry of the app with this name or id.
    func listed(_ app: String) async throws -> AppInfo? {
        try await listApps().first { $0.name == app || $0.id == app }
    }

    static func json(_ result: SetTextResult) -> JSONValue {
        ["ok": .bool(result.accepted), "matches": .bool(result.matches), "length": .int(Int64(result.length))]
    }
}
