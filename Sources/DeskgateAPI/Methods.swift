public import JSONRPC

// Every method deskgated serves. Handlers live in the Daemon module; this file is the contract.

// MARK: - Schemas shared by results

public enum APISchemas {
    public static let node = Schema.object([
        .init("ref", .string, required: true),
        .init("parent", .anyOf([.string, .null]), required: true),
        .init("depth", .integer, required: true),
        .init("role", .string, required: true, "AT-SPI standard role name, e.g. \"push button\"."),
        .init("name", .string, required: true),
        .init("states", .arrayOf(.string), required: true),
        .init("description", .string),
        .init("bounds", .object([.init("x", .integer), .init("y", .integer), .init("width", .integer), .init("height", .integer)])),
        .init("actions", .arrayOf(.string)),
        .init("text", .string, "Text content; never present for password fields."),
        .init("value", .object([.init("current", .number), .init("minimum", .number), .init("maximum", .number)])),
        .init("relations", .object([], additional: true)),
    ], additional: true)

    public static let identity = Schema.object([
        .init("uid", .integer, required: true),
        .init("pid", .integer, required: true),
        .init("exe", .string, required: true),
        .init("unit", .anyOf([.string, .null])),
        .init("script", .anyOf([.string, .null]), "Script path for interpreters; advisory."),
        .init("label", .anyOf([.string, .null]), "Advisory label from session.hello; never trusted."),
    ], additional: true)
}

// MARK: - Daemon and session (never gated)

public enum DaemonPing: APIMethod {
    public static let name = "daemon.ping"
    public static let summary = "Liveness check; returns \"pong\"."
    public static let result = Schema.string(enumValues: ["pong"])
}

public enum DaemonInfo: APIMethod {
    public static let name = "daemon.info"
    public static let summary = "Version, pid, uptime, socket path, connected clients, and subsystem status."
    public static let result = Schema.object([
        .init("version", .string, required: true), .init("pid", .integer, required: true),
        .init("uptime_s", .number, required: true), .init("socket", .string, required: true),
        .init("clients", .integer, required: true),
    ], additional: true)
}

public enum SessionHello: APIMethod {
    public static let name = "session.hello"
    public static let summary = "Records an advisory label for this connection; it is always shown apart from the verified identity and never matched by policy."
    public static let params: [Schema.Field] = [.init("client", .string(maxLength: 256), required: true, "Advisory client label.")]
    public static let result = Schema.object([.init("label", .string)], additional: true)
}

public enum SessionWhoami: APIMethod {
    public static let name = "session.whoami"
    public static let summary = "The caller's identity as the daemon verified it from the kernel."
    public static let result = APISchemas.identity
}

public enum RPCDiscover: APIMethod {
    public static let name = "rpc.discover"
    public static let summary = "OpenRPC 1.2 document of every method, generated from the dispatcher's registry."
    public static let result = Schema.any(description: "OpenRPC document")
}

/// Notification only: cancels one of the caller's pending requests.
public enum RPCCancel: APIMethod {
    public static let name = "rpc.cancel"
    public static let summary = "Notification: cancel a pending request of this connection; it is answered with -32800."
    public static let params: [Schema.Field] = [.init("id", .anyOf([.string, .integer, .number, .null]), required: true)]
    public static let result = Schema.null
}

// MARK: - Accessibility

public enum AppsList: APIMethod {
    public static let name = "apps.list"
    public static let summary = "Running accessible apps the caller may observe, with their windows."
    public static let result = Schema.arrayOf(.object([
        .init("id", .string, required: true), .init("name", .string, required: true),
        .init("pid", .integer, required: true), .init("exe", .string), .init("toolkit", .string),
        .init("windows", .arrayOf(.object([.init("ref", .string), .init("name", .string), .init("role", .string), .init("active", .boolean)]))),
    ], additional: true))
    public static let riskClass: RiskClass? = .observe
    public static let errors: [ErrorCode] = [.busUnavailable]
}

public enum TreeSnapshot: APIMethod {
    public static let name = "tree.snapshot"
    public static let summary = "The app's accessibility tree as a flat depth-first list of nodes, or as a compact outline."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("root", .string, "Ref of the subtree root (default: the app)."),
        .init("max_depth", .integer(minimum: 0, maximum: 1000)),
        .init("max_nodes", .integer(minimum: 1, maximum: 100_000), "Default 5000; larger trees return truncated: true."),
        .init("filter", .stringEnum(["all", "showing", "interactive"]), "Default all."),
        .init("format", .stringEnum(["json", "outline"]), "Default json."),
        .init("include", .arrayOf(.stringEnum(["bounds", "actions", "text", "value"])), "Extra fields, each costing extra calls."),
    ]
    public static let result = Schema.object([
        .init("app", .string, required: true),
        .init("nodes", .arrayOf(APISchemas.node)),
        .init("outline", .string),
        .init("truncated", .boolean, required: true),
        .init("stats", .object([.init("nodes", .integer), .init("ms", .number)], additional: true)),
    ], additional: true)
    public static let riskClass: RiskClass? = .observe
    public static let errors: [ErrorCode] = [.appNotFound, .elementNotFound, .appNotResponding, .busUnavailable, .ambiguous]
}

public enum ElementsFind: APIMethod {
    public static let name = "elements.find"
    public static let summary = "Elements of an app matching role, name and states."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("role", .string, "AT-SPI role name, e.g. \"push button\"."),
        .init("name", .string, "Exact name."),
        .init("name_contains", .string, "Case-insensitive substring of the name."),
        .init("states", .arrayOf(.string), "States the element must all have."),
        .init("limit", .integer(minimum: 1, maximum: 10_000), "Default 100."),
    ]
    public static let result = Schema.object([.init("nodes", .arrayOf(APISchemas.node), required: true), .init("truncated", .boolean)], additional: true)
    public static let riskClass: RiskClass? = .observe
    public static let errors: [ErrorCode] = [.appNotFound, .appNotResponding, .busUnavailable, .ambiguous]
}

public enum ElementGet: APIMethod {
    public static let name = "element.get"
    public static let summary = "One element with bounds, actions, value, text (never for password fields) and relations."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = APISchemas.node
    public static let riskClass: RiskClass? = .observe
    public static let errors: [ErrorCode] = [.elementNotFound, .appNotFound, .appNotResponding]
}

public enum TextRead: APIMethod {
    public static let name = "text.read"
    public static let summary = "The text of an element. Password fields are always denied (hard_deny)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([.init("text", .string, required: true)], additional: true)
    public static let riskClass: RiskClass? = .read
    public static let errors: [ErrorCode] = [.denied, .elementNotFound, .notSupported, .appNotResponding]
}

public enum ElementActivate: APIMethod {
    public static let name = "element.activate"
    public static let summary = "Performs an element's action (default: its first) and returns its states afterwards."
    public static let params: [Schema.Field] = [APIFields.ref, .init("action", .string, "Action name, e.g. \"click\".")]
    public static let result = Schema.object([.init("ok", .boolean), .init("action", .string), .init("states", .arrayOf(.string))], additional: true)
    public static let riskClass: RiskClass? = .act
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
}

public enum ElementFocus: APIMethod {
    public static let name = "element.focus"
    public static let summary = "Moves keyboard focus to an element (Component.GrabFocus)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([.init("ok", .boolean), .init("states", .arrayOf(.string))], additional: true)
    public static let riskClass: RiskClass? = .act
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
}

public enum TextSet: APIMethod {
    public static let name = "text.set"
    public static let summary = "Replaces an editable element's text and reports whether the field now holds it."
    public static let params: [Schema.Field] = [APIFields.ref, .init("value", .string(maxLength: 1 << 20), required: true)]
    public static let result = Schema.object([.init("ok", .boolean), .init("matches", .boolean), .init("length", .integer)], additional: true)
    public static let riskClass: RiskClass? = .write
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
}

public enum FieldFill: APIMethod {
    public static let name = "field.fill"
    public static let summary = "Finds the editable field named or labelled `field` and sets its text."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("field", .string, required: true, "Field name or label (exact first, then case-insensitive)."),
        .init("value", .string(maxLength: 1 << 20), required: true),
    ]
    public static let result = Schema.object([.init("ref", .string), .init("ok", .boolean), .init("matches", .boolean)], additional: true)
    public static let riskClass: RiskClass? = .write
    public static let errors: [ErrorCode] = [.appNotFound, .elementNotFound, .ambiguous, .notSupported, .appNotResponding]
}

public enum ValueSet: APIMethod {
    public static let name = "value.set"
    public static let summary = "Sets a range element's current value (within its minimum and maximum)."
    public static let params: [Schema.Field] = [APIFields.ref, .init("value", .number, required: true)]
    public static let result = Schema.object([.init("ok", .boolean), .init("value", .number)], additional: true)
    public static let riskClass: RiskClass? = .write
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .invalidValue, .appNotResponding]
}

public enum EventsSubscribe: APIMethod {
    public static let name = "events.subscribe"
    public static let summary = "Streams accessibility events as `event` notifications on this connection until it closes."
    public static let eventTypes = ["focus", "window", "children", "state", "name", "text"]
    public static let params: [Schema.Field] = [.init("events", .array(.stringEnum(eventTypes), maxItems: 16), required: true)]
    public static let result = Schema.object([.init("events", .arrayOf(.string))], additional: true)
    public static let riskClass: RiskClass? = .observe
    public static let errors: [ErrorCode] = [.busUnavailable]
}

// MARK: - Broker

public enum AgentRegister: APIMethod {
    public static let name = "agent.register"
    public static let summary = "Registers the caller as the prompt helper (only executables listed in prompt_agents; one at a time)."
    public static let result = Schema.object([.init("registered", .boolean)], additional: true)
    public static let errors: [ErrorCode] = [.denied]
}

public enum GrantsList: APIMethod {
    public static let name = "grants.list"
    public static let summary = "All policy rules and remembered grants with their layer and id."
    public static let result = Schema.object([.init("rules", .arrayOf(.any())), .init("grants", .arrayOf(.any()))], additional: true)
    public static let riskClass: RiskClass? = .admin
}

public enum GrantsRevoke: APIMethod {
    public static let name = "grants.revoke"
    public static let summary = "Removes one remembered grant. Never blocked by policy or audit state."
    public static let params: [Schema.Field] = [.init("id", .string, required: true)]
    public static let result = Schema.object([.init("revoked", .boolean)], additional: true)
}

public enum GrantsRevokeAll: APIMethod {
    public static let name = "grants.revoke_all"
    public static let summary = "Kill switch: removes every remembered grant. Never blocked."
    public static let result = Schema.object([.init("revoked", .integer)], additional: true)
}

public enum BrokerCheck: APIMethod {
    public static let name = "broker.check"
    public static let summary = "What the broker would decide for one of the caller's own requests, without acting."
    public static let params: [Schema.Field] = [
        .init("method", .string, required: true),
        .init("params", .object([], additional: true), "The params the request would carry."),
    ]
    public static let result = Schema.object([
        .init("effect", .stringEnum(["allow", "ask", "deny"]), required: true),
        .init("rule", .anyOf([.string, .null])), .init("reason", .string), .init("class", .string),
    ], additional: true)
}

// MARK: - Audit

public enum AuditQuery: APIMethod {
    public static let name = "audit.query"
    public static let summary = "Audit records, oldest first, filtered."
    public static let params: [Schema.Field] = [
        .init("since_seq", .integer(minimum: 0)),
        .init("since", .string, "RFC 3339 time."),
        .init("client_exe", .string),
        .init("method", .string),
        .init("decision", .stringEnum(["allow", "ask", "deny"])),
        .init("limit", .integer(minimum: 1, maximum: 1000), "Default 100."),
    ]
    public static let result = Schema.object([.init("records", .arrayOf(.any()), required: true)], additional: true)
    public static let riskClass: RiskClass? = .admin
}

public enum AuditVerify: APIMethod {
    public static let name = "audit.verify"
    public static let summary = "Verifies the audit hash chain."
    public static let result = Schema.object([
        .init("ok", .boolean, required: true), .init("records", .integer, required: true), .init("first_bad_seq", .integer),
    ], additional: true)
    public static let riskClass: RiskClass? = .admin
}

// MARK: - The table

public enum DeskgateAPI {
    /// Every client-callable method, in documentation order.
    public static let methods: [any APIMethod.Type] = [
        DaemonPing.self, DaemonInfo.self, SessionHello.self, SessionWhoami.self, RPCDiscover.self, RPCCancel.self,
        AppsList.self, TreeSnapshot.self, ElementsFind.self, ElementGet.self, TextRead.self,
        ElementActivate.self, ElementFocus.self, TextSet.self, FieldFill.self, ValueSet.self, EventsSubscribe.self,
        AgentRegister.self, GrantsList.self, GrantsRevoke.self, GrantsRevokeAll.self, BrokerCheck.self,
        AuditQuery.self, AuditVerify.self,
    ]

    public static let descriptors: [MethodDescriptor] = methods.map { $0.descriptor }

    public static func descriptor(named name: String) -> MethodDescriptor? {
        descriptors.first { $0.name == name }
    }

    public static let version = "0.1.0"
}

// MARK: - Test methods (registered only with `deskgated --enable-test-methods`)

/// Sleeps, so tests can observe concurrency, ordering, cancellation and backpressure.
public enum DebugSleep: APIMethod {
    public static let name = "debug.sleep"
    public static let summary = "Test only: sleeps `ms` milliseconds and reports how many debug.sleep calls ran at once."
    public static let params: [Schema.Field] = [.init("ms", .integer(minimum: 0, maximum: 60_000), required: true)]
    public static let result = Schema.object([.init("slept_ms", .integer), .init("max_concurrent", .integer)], additional: true)
}
