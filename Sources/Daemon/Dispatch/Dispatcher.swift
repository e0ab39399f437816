public import ATSPI
public import DeskgateAPI
public import JSONRPC
public import Logging

/// A gated request as the gate sees it: verified subject, method and class, and the one target
/// resolved for it (the same value the handler then acts on).
public struct GatedCall: Sendable {
    public let context: RequestContext
    public let descriptor: MethodDescriptor
    public let riskClass: RiskClass
    public let params: ParamsObject
    /// The app and element, read live before the broker decides; nil for methods that name none
    /// (admin methods, and listings and streams, which are decided per app inside).
    public let target: ResolvedTarget?

    /// The reserved `interactive` param.
    public var interactive: Bool { context.interactive }
    /// Listings and streams: accepted as a call, decided per app inside.
    public var filteredPerApp: Bool {
        if case .filteredPerApp = descriptor.gating { return true }
        return false
    }
}

/// The permission broker and audit log as the dispatcher sees them.
///
/// `authorize` runs before the handler and either returns a ticket or throws the denial (or an
/// audit failure); `complete` records the outcome, durably, before the reply is sent.
public protocol RequestGate: Sendable {
    func authorize(_ call: GatedCall) async throws -> GateTicket
    func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws
    /// A request refused before any decision because the element it names is no longer the one
    /// the client was shown (-32003 `changed`): recorded, since the client meant to act on it.
    func refused(_ call: GatedCall, error: RPCError) async throws
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
    public func refused(_ call: GatedCall, error: RPCError) async throws {}
}

/// Reads one request top to bottom: method lookup → params validated and decoded → target
/// resolved once, live → gate (broker decides, audit records) → handler acts on that target →
/// outcome recorded → reply. Transport-free: the server hands it requests and sends what it
/// returns.
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
        let context = RequestContext(session: session, requestID: request.id, method: request.method, logger: logger,
                                     interactive: true)
        do {
            let params = try ParamsObject(validating: request.params, fields: entry.descriptor.fields)
            switch try inline(try entry.decode(params), context) {
            case .value(let value): return .success(value)
            case .encoded(let encoded): return .success((try? JSONParser.parse(encoded.bytes)) ?? .null)
            }
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
        let raw: ParamsObject
        let params: any APIParams
        do {
            raw = try ParamsObject(validating: request.params, fields: entry.descriptor.fields)
            params = try entry.decode(raw)
        } catch {
            return .failure(Self.rpcError(error))
        }
        let interactive = entry.descriptor.riskClass == nil ? true : ((try? raw.bool("interactive", default: true)) ?? true)
        let context = RequestContext(session: session, requestID: request.id, method: request.method, logger: requestLogger,
                                     interactive: interactive)
        guard let riskClass = entry.descriptor.riskClass else {
            return await run { try await entry.handler(params, context, nil) }
        }
        var target: ResolvedTarget?
        if let resolve = entry.resolve {
            do {
                target = try await resolve(params, context)
            } catch {
                // The target could not be resolved (unknown app, stale ref): the broker never sees
                // it, but the failure is still an answer to the request.
                let rpcError = Self.rpcError(error)
                if rpcError.data?["reason"] == "changed" {
                    let call = GatedCall(context: context, descriptor: entry.descriptor, riskClass: riskClass, params: raw,
                                         target: nil)
                    do { try await gate.refused(call, error: rpcError) } catch { return .failure(Self.rpcError(error)) }
                }
                return .failure(rpcError)
            }
        }
        let call = GatedCall(context: context, descriptor: entry.descriptor, riskClass: riskClass, params: raw, target: target)
        let ticket: GateTicket
        do {
            ticket = try await gate.authorize(call)
        } catch {
            return .failure(Self.rpcError(error))
        }
        let outcome = await run { try await entry.handler(params, context, target) }
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
