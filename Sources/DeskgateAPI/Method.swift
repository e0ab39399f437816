public import JSONRPC

/// How much a method can do; the broker's policy rules name these classes.
public enum RiskClass: String, Sendable, CaseIterable, Comparable {
    case observe, read, act, write
    /// Filling a credential from the keyring (`field.fill_secret`): never covered by `*`, a
    /// task or a remembered grant; allowed without asking only by a rule naming the item, the
    /// client and the app exactly.
    case secret
    case admin
    /// Lifting a pause (`broker.resume`): exempt from the pause, matched only by rules that name
    /// the method exactly (never by `*` or a class name), else a person is asked.
    case control

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: RiskClass, rhs: RiskClass) -> Bool { lhs.rank < rhs.rank }
}

/// How the broker stands in front of a method.
public enum Gating: Sendable, Hashable {
    /// Never gated: liveness, session facts, the prompt helper's registration, revoking grants,
    /// dry-run checks of the caller's own requests.
    case ungated
    /// Decided by the broker, on the one target resolved for the request, before it runs.
    case gated(RiskClass)
    /// The call itself is accepted; what it returns is decided per app, by rules and remembered
    /// grants alone (listings and streams never prompt).
    case filteredPerApp(RiskClass)

    /// The risk class rules name, for gated and filtered methods.
    public var riskClass: RiskClass? {
        switch self {
        case .ungated: nil
        case .gated(let riskClass), .filteredPerApp(let riskClass): riskClass
        }
    }
}

/// A method's params, decoded once from params already validated against its schema.
public protocol APIParams: Sendable {
    init(_ params: ParamsObject) throws(RPCError)
}

/// For methods without params.
public struct NoParams: APIParams {
    public init(_ params: ParamsObject) {}
}

/// A method's result as the transport writes it.
public enum APIReply: Sendable {
    case value(JSONValue)
    /// JSON text written by the handler without a ``JSONValue`` tree (large results).
    case encoded(EncodedJSON)
}

/// A method's typed result.
public protocol APIResult: Sendable {
    var reply: APIReply { get }
}

extension JSONValue: APIResult {
    public var reply: APIReply { .value(self) }
}

extension EncodedJSON: APIResult {
    public var reply: APIReply { .encoded(self) }
}

/// A deskgate JSON-RPC method: its name, params, result and gating, declared once.
///
/// The dispatcher validates params against ``fields`` and decodes them into ``Params``;
/// `rpc.discover` publishes the schemas, the CLI and `deskgate-mcp` derive their arguments from
/// them. A handler can only be registered for a type conforming to this protocol, so a method
/// cannot exist without its schema, and the handler receives ``Params`` and returns ``Result``.
public protocol APIMethod: Sendable {
    associatedtype Params: APIParams = NoParams
    associatedtype Result: APIResult = JSONValue
    /// Wire name, e.g. `tree.snapshot`.
    static var name: String { get }
    /// One sentence for `rpc.discover` and tool descriptions.
    static var summary: String { get }
    /// The schema of the method's own params (the reserved `interactive` param is added for
    /// gated methods).
    static var params: [Schema.Field] { get }
    static var result: Schema { get }
    static var gating: Gating { get }
    /// The param carrying text typed into an app, recorded in the audit log as `{len, hmac}`
    /// (`{len}` alone for password fields), never as itself.
    static var auditedText: String? { get }
    /// Params recorded in the audit log as given: what a person reviewing the log needs to
    /// know of the request and is no secret (the option chosen, the URL loaded).
    static var auditedParams: [String] { get }
    /// The method reaches beyond the desktop: what it does can load or send data elsewhere
    /// (`browser.navigate`). MCP's `openWorldHint`.
    static var opensWorld: Bool { get }
    /// Errors beyond the JSON-RPC standard ones that the method may return.
    static var errors: [ErrorCode] { get }
}

extension APIMethod {
    public static var params: [Schema.Field] { [] }
    public static var gating: Gating { .ungated }
    public static var auditedText: String? { nil }
    public static var auditedParams: [String] { [] }
    public static var opensWorld: Bool { false }
    public static var errors: [ErrorCode] { [] }

    /// Risk class for the broker; nil for methods that are never gated.
    public static var riskClass: RiskClass? { gating.riskClass }

    /// Every field the wire accepts: the method's params, plus `interactive` when gated.
    public static var fields: [Schema.Field] {
        riskClass == nil ? params : params + [APIFields.interactive]
    }

    public static var descriptor: MethodDescriptor {
        MethodDescriptor(name: name, summary: summary, fields: fields, result: result, gating: gating,
                         auditedText: auditedText, auditedParams: auditedParams, opensWorld: opensWorld, errors: errors)
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
    public var gating: Gating
    public var auditedText: String?
    public var auditedParams: [String]
    public var opensWorld: Bool
    public var errors: [ErrorCode]

    public var riskClass: RiskClass? { gating.riskClass }
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
    /// Daemon → helper notification `{agents}`: how many other clients are connected.
    public static let agentClients = "agent.clients"
    /// Notification to the prompt helper that a prompt is no longer wanted.
    public static let agentCancel = "agent.cancel"
}
