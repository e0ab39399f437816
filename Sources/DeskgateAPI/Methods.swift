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
        .init("text", .string, "Text content: only where the caller may read this element (class read); never for password fields."),
        .init("value", .object([.init("current", .number), .init("minimum", .number), .init("maximum", .number)])),
        .init("content_withheld", .boolean, "The element has text or a value the caller may not read (class read), so it is left out."),
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

    public struct Params: APIParams {
        public var client: String
        public init(_ p: ParamsObject) throws(RPCError) { client = try p.string("client") }
    }
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

    public struct Params: APIParams {
        public var id: JSONValue
        public init(_ p: ParamsObject) throws(RPCError) { id = try p.value("id") ?? .null }
    }
}

// MARK: - Accessibility

public enum AppsList: APIMethod {
    public static let name = "apps.list"
    public static let summary = "Running accessible apps the caller may observe (by a rule or a remembered grant; listing never prompts), with their windows."
    public static let result = Schema.arrayOf(.object([
        .init("id", .string, required: true), .init("name", .string, required: true),
        .init("pid", .integer, required: true), .init("exe", .string), .init("toolkit", .string),
        .init("windows", .arrayOf(.object([.init("ref", .string), .init("name", .string), .init("role", .string), .init("active", .boolean)]))),
    ], additional: true))
    public static let gating = Gating.filteredPerApp(.observe)
    public static let errors: [ErrorCode] = [.busUnavailable]
    public typealias Result = [Entry]

    /// One app of the listing.
    public struct Entry: Sendable, Hashable {
        public var id: String
        public var name: String
        public var pid: Int32
        public var exe: String?
        public var toolkit: String
        public var windows: [Window]
        public var responding: Bool

        public struct Window: Sendable, Hashable {
            public var ref: String
            public var name: String
            public var role: String
            public var active: Bool
            public init(ref: String, name: String, role: String, active: Bool) {
                self.ref = ref
                self.name = name
                self.role = role
                self.active = active
            }
        }

        public init(id: String, name: String, pid: Int32, exe: String?, toolkit: String, windows: [Window], responding: Bool) {
            self.id = id
            self.name = name
            self.pid = pid
            self.exe = exe
            self.toolkit = toolkit
            self.windows = windows
            self.responding = responding
        }

        public var json: JSONValue {
            var object: JSONObject = [
                "id": .string(id), "name": .string(name), "pid": .int(Int64(pid)),
                "exe": exe.map(JSONValue.string) ?? .null, "toolkit": .string(toolkit),
            ]
            object.append("windows", .array(windows.map { window in
                ["ref": .string(window.ref), "name": .string(window.name), "role": .string(window.role),
                 "active": .bool(window.active)]
            }))
            if !responding { object.append("responding", false) }
            return .object(object)
        }
    }
}

extension Array: APIResult where Element == AppsList.Entry {
    public var reply: APIReply { .value(.array(map(\.json))) }
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
        .init("include", .arrayOf(.stringEnum(["bounds", "actions", "text", "value"])), "Extra fields, each costing extra calls. text and value (and the outline's text) appear only where the caller may read (class read); elsewhere the node says content_withheld."),
    ]
    public static let result = Schema.object([
        .init("app", .string, required: true),
        .init("nodes", .arrayOf(APISchemas.node)),
        .init("outline", .string),
        .init("truncated", .boolean, required: true),
        .init("stats", .object([.init("nodes", .integer), .init("ms", .number)], additional: true)),
    ], additional: true)
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.appNotFound, .elementNotFound, .appNotResponding, .busUnavailable, .ambiguous]
    /// Thousands of nodes: written straight into the reply.
    public typealias Result = EncodedJSON

    public enum Filter: String, Sendable { case all, showing, interactive }
    public enum Format: String, Sendable { case json, outline }

    public struct Params: APIParams {
        public var app: String
        public var root: String?
        public var maxDepth: Int?
        public var maxNodes: Int
        public var filter: Filter
        public var format: Format
        public var include: [String]
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            root = try p.optionalString("root")
            maxDepth = try p.optionalInt("max_depth")
            maxNodes = try p.int("max_nodes", default: 5000)
            filter = Filter(rawValue: try p.optionalString("filter") ?? "all") ?? .all
            format = Format(rawValue: try p.optionalString("format") ?? "json") ?? .json
            include = try p.stringArray("include") ?? []
        }
    }
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
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.appNotFound, .appNotResponding, .busUnavailable, .ambiguous]

    public struct Params: APIParams {
        public var app: String
        public var role: String?
        public var name: String?
        public var nameContains: String?
        public var states: [String]
        public var limit: Int
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            role = try p.optionalString("role")
            name = try p.optionalString("name")
            nameContains = try p.optionalString("name_contains")
            states = try p.stringArray("states") ?? []
            limit = try p.int("limit", default: 100)
        }
    }
}

/// The params of methods that name one element by its ref.
public struct RefParams: APIParams {
    public var ref: String
    public init(_ p: ParamsObject) throws(RPCError) { ref = try p.string("ref") }
}

public enum ElementGet: APIMethod {
    public static let name = "element.get"
    public static let summary = "One element with bounds, actions and relations, and its text and value where the caller may read it (class read; never for password fields)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = APISchemas.node
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.elementNotFound, .appNotFound, .appNotResponding]
    public typealias Params = RefParams
}

public enum TextRead: APIMethod {
    public static let name = "text.read"
    public static let summary = "The text of an element. Password fields are always denied (hard_deny)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([.init("text", .string, required: true)], additional: true)
    public static let gating = Gating.gated(.read)
    public static let errors: [ErrorCode] = [.denied, .elementNotFound, .notSupported, .appNotResponding]
    public typealias Params = RefParams

    public struct Result: APIResult {
        public var text: String
        public init(text: String) { self.text = text }
        public var reply: APIReply { .value(["text": .string(text)]) }
    }
}

public enum ElementActivate: APIMethod {
    public static let name = "element.activate"
    public static let summary = "Performs an element's action (default: its first) and returns its states afterwards."
    public static let params: [Schema.Field] = [APIFields.ref, .init("action", .string, "Action name, e.g. \"click\".")]
    public static let result = Schema.object([.init("ok", .boolean), .init("action", .string), .init("states", .arrayOf(.string))], additional: true)
    public static let gating = Gating.gated(.act)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var action: String?
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            action = try p.optionalString("action")
        }
    }

    public struct Result: APIResult {
        public var ok: Bool
        public var action: String
        public var states: [String]
        public init(ok: Bool, action: String, states: [String]) {
            self.ok = ok
            self.action = action
            self.states = states
        }
        public var reply: APIReply { .value(["ok": .bool(ok), "action": .string(action), "states": JSONValue(states)]) }
    }
}

public enum ElementFocus: APIMethod {
    public static let name = "element.focus"
    public static let summary = "Moves keyboard focus to an element (Component.GrabFocus)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([.init("ok", .boolean), .init("states", .arrayOf(.string))], additional: true)
    public static let gating = Gating.gated(.act)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
    public typealias Params = RefParams

    public struct Result: APIResult {
        public var ok: Bool
        public var states: [String]
        public init(ok: Bool, states: [String]) {
            self.ok = ok
            self.states = states
        }
        public var reply: APIReply { .value(["ok": .bool(ok), "states": JSONValue(states)]) }
    }
}

public enum TextSet: APIMethod {
    public static let name = "text.set"
    public static let summary = "Replaces an editable element's text and reports whether the field now holds it."
    public static let params: [Schema.Field] = [APIFields.ref, .init("value", .string(maxLength: 1 << 20), required: true)]
    public static let result = Schema.object([.init("ok", .boolean), .init("matches", .boolean), .init("length", .integer)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let auditedText: String? = "value"
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var value: String
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            value = try p.string("value")
        }
    }

    /// Also `field.fill`'s result, which adds the field's ref.
    public struct Result: APIResult {
        public var ok: Bool
        public var matches: Bool
        public var length: Int
        /// The field filled (`field.fill` only).
        public var ref: String?
        public init(ok: Bool, matches: Bool, length: Int, ref: String? = nil) {
            self.ok = ok
            self.matches = matches
            self.length = length
            self.ref = ref
        }
        public var reply: APIReply {
            var object: JSONObject = [:]
            if let ref { object.append("ref", .string(ref)) }
            object.append("ok", .bool(ok))
            object.append("matches", .bool(matches))
            object.append("length", .int(Int64(length)))
            return .value(.object(object))
        }
    }
}

public enum FieldFill: APIMethod {
    public static let name = "field.fill"
    public static let summary = "Finds the editable field named or labelled `field` and sets its text."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("field", .string, required: true, "The field's label (or name): exact first, then ignoring case, extra whitespace and a trailing colon. The broker decides on the field found."),
        .init("value", .string(maxLength: 1 << 20), required: true),
    ]
    public static let result = Schema.object([.init("ref", .string), .init("ok", .boolean), .init("matches", .boolean)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let auditedText: String? = "value"
    public static let errors: [ErrorCode] = [.appNotFound, .elementNotFound, .ambiguous, .notSupported, .appNotResponding]
    public typealias Result = TextSet.Result

    public struct Params: APIParams {
        public var app: String
        public var field: String
        public var value: String
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            field = try p.string("field")
            value = try p.string("value")
        }
    }
}

public enum ValueSet: APIMethod {
    public static let name = "value.set"
    public static let summary = "Sets a range element's current value (within its minimum and maximum)."
    public static let params: [Schema.Field] = [APIFields.ref, .init("value", .number, required: true)]
    public static let result = Schema.object([.init("ok", .boolean), .init("value", .number)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .invalidValue, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var value: Double
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            value = try p.double("value")
        }
    }

    public struct Result: APIResult {
        public var ok: Bool
        public var value: Double
        public init(ok: Bool, value: Double) {
            self.ok = ok
            self.value = value
        }
        public var reply: APIReply { .value(["ok": .bool(ok), "value": .double(value)]) }
    }
}

public enum EventsSubscribe: APIMethod {
    public static let name = "events.subscribe"
    public static let summary = "Streams accessibility events as `event` notifications on this connection until it closes: only of apps the caller may observe (by a rule or a remembered grant; streams never prompt), text events only of elements it may read, none of password fields."
    public static let eventTypes = ["focus", "window", "children", "state", "name", "text"]
    public static let params: [Schema.Field] = [.init("events", .array(.stringEnum(eventTypes), maxItems: 16), required: true)]
    public static let result = Schema.object([.init("events", .arrayOf(.string))], additional: true)
    public static let gating = Gating.filteredPerApp(.observe)
    public static let errors: [ErrorCode] = [.busUnavailable]

    public struct Params: APIParams {
        public var events: Set<String>
        public init(_ p: ParamsObject) throws(RPCError) { events = Set(try p.stringArray("events") ?? []) }
    }
}

// MARK: - Broker

public enum HelperRegister: APIMethod {
    public static let name = "agent.register"
    public static let summary = "Registers the caller as the prompt helper (only executables listed in prompt_agents; one at a time)."
    public static let result = Schema.object([.init("registered", .boolean)], additional: true)
    public static let errors: [ErrorCode] = [.denied]
}

public enum GrantsList: APIMethod {
    public static let name = "grants.list"
    public static let summary = "All policy rules and remembered grants with their layer and id."
    public static let result = Schema.object([.init("rules", .arrayOf(.any())), .init("grants", .arrayOf(.any()))], additional: true)
    public static let gating = Gating.gated(.admin)
}

public enum GrantsRevoke: APIMethod {
    public static let name = "grants.revoke"
    public static let summary = "Removes one remembered grant. Never blocked by policy or audit state."
    public static let params: [Schema.Field] = [.init("id", .string, required: true)]
    public static let result = Schema.object([.init("revoked", .boolean)], additional: true)

    public struct Params: APIParams {
        public var id: String
        public init(_ p: ParamsObject) throws(RPCError) { id = try p.string("id") }
    }
}

public enum GrantsRevokeAll: APIMethod {
    public static let name = "grants.revoke_all"
    public static let summary = "Kill switch: removes every remembered grant. Never blocked."
    public static let result = Schema.object([.init("revoked", .integer)], additional: true)
}

public enum BrokerCheck: APIMethod {
    public static let name = "broker.check"
    public static let summary = "What the broker would decide for one of the caller's own requests, without acting or prompting: the same decision the real call would get."
    public static let params: [Schema.Field] = [
        .init("method", .string, required: true),
        .init("params", .object([], additional: true), "The params the request would carry."),
    ]
    public static let result = Schema.object([
        .init("effect", .stringEnum(["allow", "ask", "deny"]), required: true),
        .init("rule", .anyOf([.string, .null])), .init("reason", .string), .init("class", .string),
    ], additional: true)

    public struct Params: APIParams {
        public var method: String
        public var params: JSONValue?
        public init(_ p: ParamsObject) throws(RPCError) {
            method = try p.string("method")
            params = try p.value("params")
        }
    }
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
    public static let gating = Gating.gated(.admin)

    /// The filter, as the audit module reads it (every param but the reserved `interactive`).
    public struct Params: APIParams {
        public var filter: JSONObject
        public init(_ p: ParamsObject) throws(RPCError) {
            filter = JSONObject(p.object.members.filter { $0.key != "interactive" })
        }
    }
}

public enum AuditVerify: APIMethod {
    public static let name = "audit.verify"
    public static let summary = "Verifies the audit hash chain."
    public static let result = Schema.object([
        .init("ok", .boolean, required: true), .init("records", .integer, required: true), .init("first_bad_seq", .integer),
    ], additional: true)
    public static let gating = Gating.gated(.admin)
}

// MARK: - The table

public enum DeskgateAPI {
    /// Every client-callable method, in documentation order.
    public static let methods: [any APIMethod.Type] = [
        DaemonPing.self, DaemonInfo.self, SessionHello.self, SessionWhoami.self, RPCDiscover.self, RPCCancel.self,
        AppsList.self, TreeSnapshot.self, ElementsFind.self, ElementGet.self, TextRead.self,
        ElementActivate.self, ElementFocus.self, TextSet.self, FieldFill.self, ValueSet.self, EventsSubscribe.self,
        HelperRegister.self, GrantsList.self, GrantsRevoke.self, GrantsRevokeAll.self, BrokerCheck.self,
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

    public struct Params: APIParams {
        public var ms: Int
        public init(_ p: ParamsObject) throws(RPCError) { ms = try p.int("ms") }
    }
}
