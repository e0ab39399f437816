public import ATSPI
public import Broker
public import DeskgateAPI
public import JSONRPC
public import Logging
import Synchronization

/// Everything a handler knows about the request it serves.
public struct RequestContext: Sendable {
    public let session: ClientSession
    public let requestID: RequestID
    public let method: String
    public let logger: Logger
    /// The reserved `interactive` param of gated methods (default true), read in one place.
    public let interactive: Bool
    /// What the handler adds to the request's outcome record (never a secret or typed text).
    public let outcomeNotes = OutcomeNotes()

    /// The caller as the broker sees it: verified identity, advisory label, connection.
    public var client: ClientIdentity { AuditedBrokerGate.clientIdentity(session) }
}

/// Facts only the handler learns that belong in the audit's outcome record, e.g. the length
/// of the secret `field.fill_secret` filled (its `details`).
public final class OutcomeNotes: Sendable {
    private let notes = Mutex(JSONObject())

    public init() {}

    public func add(_ key: String, _ value: JSONValue) { notes.withLock { $0[key] = value } }

    public var all: JSONObject { notes.withLock { $0 } }
}

/// A method's successful result as the transport writes it.
public typealias MethodResult = APIReply

/// One registered method: its declaration and its code, typed by its ``APIMethod`` and erased
/// here so the table can hold them all.
public struct MethodEntry: Sendable {
    public let descriptor: MethodDescriptor
    /// Decodes validated params into the method's ``APIMethod/Params``.
    let decode: @Sendable (ParamsObject) throws -> any APIParams
    /// Resolves the target of a gated method, live, before the broker decides.
    let resolve: (@Sendable (any APIParams, RequestContext) async throws -> ResolvedTarget)?
    let handler: @Sendable (any APIParams, RequestContext, ResolvedTarget?) async throws -> APIReply
    /// Set for ungated methods that never suspend: they skip the task hop (latency matters for pings).
    let inlineHandler: (@Sendable (any APIParams, RequestContext) throws -> APIReply)?

    public var gating: Gating { descriptor.gating }
}

/// The dispatcher's registry. Handlers can only be registered through an ``APIMethod`` type, so
/// every callable method has a published schema and typed params, and `rpc.discover` is
/// generated from this table.
public struct MethodTable: Sendable {
    private var entries: [String: MethodEntry] = [:]
    private var order: [String] = []

    public init() {}

    private mutating func add(_ entry: MethodEntry) {
        precondition(entries[entry.descriptor.name] == nil, "method \(entry.descriptor.name) registered twice")
        entries[entry.descriptor.name] = entry
        order.append(entry.descriptor.name)
    }

    /// Registers a method that names no target: ungated methods, admin methods and methods
    /// filtered per app (their handler decides per app itself).
    public mutating func register<M: APIMethod>(
        _ method: M.Type, handler: @escaping @Sendable (M.Params, RequestContext) async throws -> M.Result
    ) {
        if case .gated(let riskClass) = M.gating {
            precondition(riskClass == .admin || riskClass == .control,
                         "\(M.name): a gated method that touches apps needs a target resolver")
        }
        add(MethodEntry(descriptor: M.descriptor, decode: { try M.Params($0) }, resolve: nil,
                        handler: { params, context, _ in try await handler(params as! M.Params, context).reply },
                        inlineHandler: nil))
    }

    /// Registers a gated method with its target: `target` resolves it live from the params;
    /// the broker decides on what it returns, and `handler` acts on exactly that.
    public mutating func register<M: APIMethod>(
        _ method: M.Type,
        target: @escaping @Sendable (M.Params, RequestContext) async throws -> ResolvedTarget,
        handler: @escaping @Sendable (M.Params, RequestContext, ResolvedTarget) async throws -> M.Result
    ) {
        guard case .gated = M.gating else { preconditionFailure("\(M.name) is not gated; it takes no target") }
        add(MethodEntry(descriptor: M.descriptor, decode: { try M.Params($0) },
                        resolve: { params, context in try await target(params as! M.Params, context) },
                        handler: { params, context, resolved in
                            guard let resolved else { throw RPCError.internalError("\(M.name) ran without its target") }
                            return try await handler(params as! M.Params, context, resolved).reply
                        },
                        inlineHandler: nil))
    }

    /// Registers an ungated method whose handler neither suspends nor blocks; it runs on the
    /// connection's event loop without a task.
    public mutating func registerInline<M: APIMethod>(
        _ method: M.Type, handler: @escaping @Sendable (M.Params, RequestContext) throws -> M.Result
    ) {
        precondition(M.gating == .ungated, "gated methods cannot be inline: the broker may suspend")
        let inline: @Sendable (any APIParams, RequestContext) throws -> APIReply = { params, context in
            try handler(params as! M.Params, context).reply
        }
        add(MethodEntry(descriptor: M.descriptor, decode: { try M.Params($0) }, resolve: nil,
                        handler: { params, context, _ in try inline(params, context) }, inlineHandler: inline))
    }

    public func entry(_ name: String) -> MethodEntry? { entries[name] }

    /// Registered methods in registration order.
    public var descriptors: [MethodDescriptor] { order.compactMap { entries[$0]?.descriptor } }
}
