public import DeskgateAPI
public import JSONRPC
public import Logging

/// A gated request as the gate sees it: verified subject, method and class, resolved target.
public struct GatedCall: Sendable {
    public let context: RequestContext
    public let descriptor: MethodDescriptor
    public let riskClass: RiskClass
    public let params: ParamsObject
    public let target: RequestTarget?
    /// The reserved `interactive` param (default true).
    public let interactive: Bool
}

/// The permission broker and audit log as the dispatcher sees them.
///
/// `authorize` runs before the handler and either returns a ticket or throws the denial (or an
/// audit failure); `complete` records the outcome, durably, before the reply is sent.
public protocol RequestGate: Sendable {
    func authorize(_ call: GatedCall) async throws -> GateTicket
    func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws
}

/// What a gate hands from `authorize` to `complete` for one request (its own state, opaque here).
public struct GateTicket: Sendable {
    public let state: any Sendable
    public init(_ state: any Sendable) { self.state = state }
}

/// The gate used when no broker is configured: refuses every gated request.
/// Default deny: a daemon wired without its broker must not serve the desktop.
public struct DenyAllGate: RequestGate {
    public init() {}
    public func authorize(_ call: GatedCall) async throws -> GateTicket {
        throw RPCError(.denied, "Denied: no permission broker is configured", data: ["reason": "policy_error", "class": .string(call.riskClass.rawValue)])
    }
    public func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws {}
}

/// Reads one request top to bottom: method lookup → params validation → target → gate → handler
/// → outcome → reply. Transport-free: the server hands it requests and sends what it returns.
public struct Dispatcher: Sendable {
    public let table: MethodTable
    public let gate: any RequestGate
    public let logger: Logger

    public init(table: MethodTable, gate: any RequestGate, logger: Logger) {
        self.table = table
        self.gate = gate
        self.logger = logger
    }

    /// Serves the request at once if its method is inline; nil means "dispatch it as a task".
    public func dispatchInline(_ request: Request, session: ClientSession) -> Result<JSONValue, RPCError>? {
        guard let entry = table.entry(request.method), let inline = entry.inlineHandler else { return nil }
        let context = RequestContext(session: session, requestID: request.id, method: request.method, logger: logger)
        do {
            let params = try ParamsObject(validating: request.params, fields: entry.descriptor.fields)
            return .success(try inline(params, context))
        } catch {
            return .failure(Self.rpcError(error))
        }
    }

    /// Serves one request and returns its result or error.
    public func dispatch(_ request: Request, session: ClientSession) async -> Result<MethodResult, RPCError> {
        guard let entry = table.entry(request.method) else { return .failure(.methodNotFound(request.method)) }
        var requestLogger = logger
        requestLogger[metadataKey: "client"] = "\(session.id)"
        requestLogger[metadataKey: "method"] = "\(request.method)"
        let context = RequestContext(session: session, requestID: request.id, method: request.method, logger: requestLogger)
        let params: ParamsObject
        do {
            params = try ParamsObject(validating: request.params, fields: entry.descriptor.fields)
        } catch {
            return .failure(error)
        }
        guard let riskClass = entry.descriptor.riskClass else {
            return await run { try await entry.handler(params, context) }
        }
        let target: RequestTarget?
        do {
            target = try await entry.resolveTarget?(params, context)
        } catch {
            // The target could not be resolved (unknown app, stale ref): the broker never sees it,
            // but the failure is still an answer to the request.
            return .failure(Self.rpcError(error))
        }
        let call = GatedCall(context: context, descriptor: entry.descriptor, riskClass: riskClass, params: params,
                             target: target, interactive: (try? params.bool("interactive", default: true)) ?? true)
        let ticket: GateTicket
        do {
            ticket = try await gate.authorize(call)
        } catch {
            return .failure(Self.rpcError(error))
        }
        let outcome = await run { try await entry.handler(params, context) }
        do {
            try await gate.complete(ticket, outcome: outcome)
        } catch {
            // The outcome could not be recorded: the client must not believe it was.
            return .failure(Self.rpcError(error))
        }
        return outcome
    }

    private func run(_ body: () async throws -> MethodResult) async -> Result<MethodResult, RPCError> {
        do {
            return .success(try await body())
        } catch {
            let rpcError = Self.rpcError(error)
            if rpcError.code == .internalError {
                logger.error("handler failed", metadata: ["error": "\(error)"])
            }
            return .failure(rpcError)
        }
    }

    /// Maps any error to its wire form; unknown errors become -32603.
    public static func rpcError(_ error: any Error) -> RPCError {
        if let convertible = error as? any RPCErrorConvertible { return convertible.rpcError }
        if error is CancellationError { return .cancelled }
        return .internalError(String(describing: error))
    }
}
