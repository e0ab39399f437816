public import JSONRPC

// The audit log.

public enum AuditQuery: APIMethod {
    public static let name = "audit.query"
    public static let summary = "Audit records, oldest first, filtered."
    public static let params: [Schema.Field] = [
        .init("since_seq", .integer(minimum: 0)),
        .init("since", .string, "RFC 3339 time."),
        .init("client_exe", .string),
        .init("method", .string),
        .init("decision", .stringEnum(["allow", "ask", "deny"])),
        .init("task", .string(maxLength: 64), "A task's records: its begin and end, the requests it allowed and their outcomes."),
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
