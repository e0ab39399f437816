public import JSONRPC

// The broker: the prompt helper, grants, dry-run checks.

public enum HelperRegister: APIMethod {
    public static let name = "agent.register"
    public static let summary = "Registers the caller as the prompt helper (only executables listed in prompt_agents; one at a time)."
    public static let params: [Schema.Field] = [
        .init("notify_clients", .boolean, "Also send agent.clients {agents} notifications: how many other clients are connected, now and at each change (for a Pause button)."),
    ]
    public static let result = Schema.object([.init("registered", .boolean)], additional: true)
    public static let errors: [ErrorCode] = [.denied]

    public struct Params: APIParams {
        public var notifyClients: Bool
        public init(_ p: ParamsObject) throws(RPCError) { notifyClients = try p.bool("notify_clients", default: false) }
    }
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

// The stop button: anyone may pause; lifting a pause needs a rule naming it or a person.

/// The pause state as `broker.pause`, `broker.halt`, `broker.resume` and `daemon.info` report it.
private let pauseStateSchema = Schema.object([
    .init("paused", .boolean, required: true),
    .init("since", .string, "When the pause began (RFC 3339)."),
    .init("by", .object([], additional: true), "The verified client that paused (exe, pid, uid, label)."),
    .init("reason", .anyOf([.string, .null]), "The reason given, as the pausing client wrote it."),
], additional: true)

public enum BrokerPause: APIMethod {
    public static let name = "broker.pause"
    public static let summary = "Pulls the brake: every observe, read, act and write request is denied (reason paused), pending prompts are cancelled and event streams show nothing, until a person resumes. Survives a daemon restart. Never gated."
    public static let params: [Schema.Field] = [.init("reason", .string(maxLength: 500), "Why, for the audit log and daemon.info.")]
    public static let result = pauseStateSchema

    public struct Params: APIParams {
        public var reason: String?
        public init(_ p: ParamsObject) throws(RPCError) { reason = try p.optionalString("reason") }
    }
}

public enum BrokerHalt: APIMethod {
    public static let name = "broker.halt"
    public static let summary = "Pause, and also end every task session and revoke every remembered grant. Never gated."
    public static let params: [Schema.Field] = [.init("reason", .string(maxLength: 500), "Why, for the audit log and daemon.info.")]
    public static let result = Schema.object([
        .init("paused", .boolean, required: true), .init("since", .string), .init("by", .object([], additional: true)),
        .init("reason", .anyOf([.string, .null])), .init("grants_revoked", .integer, required: true),
    ], additional: true)

    public struct Params: APIParams {
        public var reason: String?
        public init(_ p: ParamsObject) throws(RPCError) { reason = try p.optionalString("reason") }
    }
}

public enum BrokerResume: APIMethod {
    public static let name = "broker.resume"
    public static let summary = "Lifts the pause. Class control: only a rule naming broker.resume exactly decides it; otherwise the person at the desktop is asked, so an agent cannot lift a pause, its own included."
    public static let result = pauseStateSchema
    public static let gating = Gating.gated(.control)
    public static let errors: [ErrorCode] = [.denied]
}
