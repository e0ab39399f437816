public import Broker
public import DeskgateAPI
public import JSONRPC
public import Logging

/// Everything a handler knows about the request it serves.
public struct RequestContext: Sendable {
    public let session: ClientSession
    public let requestID: RequestID
    public let method: String
    public let logger: Logger
}

/// What a gated request touches, resolved before the broker decides (from the app and element
/// the params name, using facts from the accessibility bus, never from the client). The broker's
/// own type, so resolvers hand the broker exactly what it matches on.
public typealias RequestTarget = TargetInfo

public typealias MethodHandler = @Sendable (ParamsObject, RequestContext) async throws -> JSONValue
/// A handler that writes its result as JSON text itself (large results such as snapshots).
public typealias EncodedMethodHandler = @Sendable (ParamsObject, RequestContext) async throws -> EncodedJSON
/// A handler that completes without suspending or blocking; served inline on the event loop.
public typealias InlineMethodHandler = @Sendable (ParamsObject, RequestContext) throws -> JSONValue
public typealias TargetResolver = @Sendable (ParamsObject, RequestContext) async throws -> RequestTarget?

/// A method's successful result as the transport writes it.
public enum MethodResult: Sendable {
    case value(JSONValue)
    /// The result's JSON text, written by the handler without a ``JSONValue`` tree.
    case encoded(EncodedJSON)
}

/// One registered method: its declaration and its code.
public struct MethodEntry: Sendable {
    public let descriptor: MethodDescriptor
    public let resolveTarget: TargetResolver?
    public let handler: @Sendable (ParamsObject, RequestContext) async throws -> MethodResult
    /// Set for ungated methods that never suspend: they skip the task hop (latency matters for pings).
    public let inlineHandler: InlineMethodHandler?
}

/// The dispatcher's registry. Handlers can only be registered through an ``APIMethod`` type, so
/// every callable method has a published schema, and `rpc.discover` is generated from this table.
public struct MethodTable: Sendable {
    private var entries: [String: MethodEntry] = [:]
    private var order: [String] = []

    public init() {}

    /// Registers `handler` for `method`. Gated methods may give a `target` resolver so the broker
    /// sees the app and element before the handler runs.
    public mutating func register<M: APIMethod>(_ method: M.Type, target: TargetResolver? = nil, handler: @escaping MethodHandler) {
        precondition(entries[M.name] == nil, "method \(M.name) registered twice")
        entries[M.name] = MethodEntry(descriptor: M.descriptor, resolveTarget: target,
                                      handler: { .value(try await handler($0, $1)) }, inlineHandler: nil)
        order.append(M.name)
    }

    /// Registers a method whose handler writes its result as JSON text (see ``EncodedJSON``); the
    /// text must be what the method's JSON value would be written as.
    public mutating func register<M: APIMethod>(_ method: M.Type, target: TargetResolver? = nil,
                                                encodedHandler: @escaping EncodedMethodHandler)
    {
        precondition(entries[M.name] == nil, "method \(M.name) registered twice")
        entries[M.name] = MethodEntry(descriptor: M.descriptor, resolveTarget: target,
                                      handler: { .encoded(try await encodedHandler($0, $1)) }, inlineHandler: nil)
        order.append(M.name)
    }

    /// Registers an ungated method whose handler neither suspends nor blocks; it runs on the
    /// connection's event loop without a task.
    public mutating func registerInline<M: APIMethod>(_ method: M.Type, handler: @escaping InlineMethodHandler) {
        precondition(entries[M.name] == nil, "method \(M.name) registered twice")
        precondition(M.riskClass == nil, "gated methods cannot be inline: the broker may suspend")
        entries[M.name] = MethodEntry(descriptor: M.descriptor, resolveTarget: nil,
                                      handler: { params, context in .value(try handler(params, context)) },
                                      inlineHandler: handler)
        order.append(M.name)
    }

    public func entry(_ name: String) -> MethodEntry? { entries[name] }

    /// Registered methods in registration order.
    public var descriptors: [MethodDescriptor] { order.compactMap { entries[$0]?.descriptor } }
}
