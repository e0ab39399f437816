public import JSONRPC

// The broker: the prompt helper, grants, dry-run checks.

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
