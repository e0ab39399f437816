public import JSONRPC

/// How much a method can do; the broker's policy rules name these classes.
public enum RiskClass: String, Sendable, CaseIterable, Comparable {
    case observe, read, act, write, admin

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: RiskClass, rhs: RiskClass) -> Bool { lhs.rank < rhs.rank }
}

/// A deskgate JSON-RPC method: its name, params, result and risk class, declared once.
///
/// The dispatcher validates params against ``fields``, `rpc.discover` publishes them, the CLI and
/// `deskgate-mcp` derive their arguments from them. A handler can only be registered for a type
/// conforming to this protocol, so a method cannot exist without its schema.
public protocol APIMethod: Sendable {
    /// Wire name, e.g. `tree.snapshot`.
    static var name: String { get }
    /// One sentence for `rpc.discover` and tool descriptions.
    static var summary: String { get }
    /// The method's own params (the reserved `interactive` param is added for gated methods).
    static var params: [Schema.Field] { get }
    static var result: Schema { get }
    /// Risk class for the broker; nil for methods that are never gated.
    static var riskClass: RiskClass? { get }
    /// Errors beyond the JSON-RPC standard ones that the method may return.
    static var errors: [ErrorCode] { get }
}

extension APIMethod {
    public static var params: [Schema.Field] { [] }
    public static var riskClass: RiskClass? { nil }
    public static var errors: [ErrorCode] { [] }

    /// Every field the wire accepts: the method's params, plus `interactive` when gated.
    public static var fields: [Schema.Field] {
        riskClass == nil ? params : params + [APIFields.interactive]
    }

    public static var descriptor: MethodDescriptor {
        MethodDescriptor(name: name, summary: summary, fields: fields, result: result, riskClass: riskClass, errors: errors)
    }

    /// Validates raw params for this method.
    public static func validate(_ raw: JSONValue?) throws(RPCError) -> ParamsObject {
        try ParamsObject(validating: raw, fields: fields)
    }
}

/// A method's declaration as a value, for tables and documents.
public struct MethodDescriptor: Sendable, Hashable {
    public var name: String
    public var summary: String
    public var fields: [Schema.Field]
    public var result: Schema
    public var riskClass: RiskClass?
    public var errors: [ErrorCode]
}

/// Params shared by several methods.
public enum APIFields {
    public static let interactive = Schema.Field(
        "interactive", .boolean,
        "Whether the broker may prompt a person for this request (default true). With false, a request that would need a prompt is denied with reason would_prompt.")
    public static let app = Schema.Field("app", .string, required: true, "App id (from apps.list) or app name.")
    public static let ref = Schema.Field("ref", .string, required: true, "Element ref issued by the daemon.")
}

/// Server-to-client messages (not callable by clients).
public enum ServerMessages {
    /// Notification carrying an accessibility event: `{type, app, ref, detail}`.
    public static let event = "event"
    /// Request to the registered prompt helper.
    public static let agentPrompt = "agent.prompt"
    /// Notification to the prompt helper that a prompt is no longer wanted.
    public static let agentCancel = "agent.cancel"
}
