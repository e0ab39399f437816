import Audit
import Broker
import DeskgateAPI
import JSONRPC
import Logging
import Synchronization

/// The gate in front of every gated method: the broker decides, the audit log records.
///
/// Order per request: the broker's decision → exec-after-connect re-check for mutating classes →
/// the decision record made durable → (handler runs) → the outcome record made durable → reply.
/// A request whose decision cannot be recorded fails with -32007 and does not run.
struct AuditedBrokerGate: RequestGate {
    let broker: Broker
    let audit: AuditLog
    let logger: Logger
    private let counter = RequestCounter()

    /// Methods decided per app inside the handler (the result is filtered, not refused whole).
    static let filteredMethods: Set<String> = [AppsList.name, EventsSubscribe.name]

    struct Ticket: Sendable {
        let requestID: String
        let started: ContinuousClock.Instant
        let client: JSONValue
        let method: String
        let target: JSONValue?
    }

    func authorize(_ call: GatedCall) async throws -> GateTicket {
        let started = ContinuousClock.now
        let session = call.context.session
        let requestID = counter.next(session: session.id)
        let client = Self.clientIdentity(session)
        let target = call.target
        var targetJSON = target?.json
        if let value = try? call.params.value("value"), case .string(let text) = value {
            // Values being typed are recorded as {len, hmac}; for password fields only the length.
            let digest = target?.role == "password text" ? AuditLog.lengthOnly(text) : audit.valueDigest(text)
            if case .object(var object)? = targetJSON {
                object["value"] = digest
                targetJSON = .object(object)
            } else {
                targetJSON = ["value": digest]
            }
        }

        var decisionJSON: JSONValue
        var denial: RPCError?
        var dropConnection = false
        if Self.filteredMethods.contains(call.descriptor.name) && client.isIdentified {  // unidentified: the broker denies
            decisionJSON = ["effect": "allow", "reason": "filtered_per_app", "rule": .null, "class": .string(call.riskClass.rawValue)]
        } else {
            let request = BrokerRequest(client: client, method: call.descriptor.name, riskClass: call.riskClass, target: target,
                                        interactive: call.interactive, preview: Self.preview(call, target: target),
                                        requestKey: call.context.requestID.description)
            var decision = await broker.decide(request)
            if decision.requiresExeRecheck && !session.executableUnchanged() {
                // The process behind this connection exec'd another program (or died) since it
                // connected: the identity the broker decided on is no longer true.
                decision.effect = .deny
                decision.reason = .policy
                dropConnection = true
            }
            decisionJSON = decision.json
            denial = decision.rpcError
            if dropConnection {
                if case .object(var object) = decisionJSON {
                    object["detail"] = "exec_after_connect"
                    decisionJSON = .object(object)
                }
                denial = RPCError(.denied, "Denied: the client executable changed since it connected (was \(session.identity.exe)); reconnect to be identified again.",
                                  data: ["reason": "policy", "class": .string(call.riskClass.rawValue), "detail": "exec_after_connect"])
            }
        }
        do {
            _ = try await audit.append(AuditEntry(kind: "decision", requestID: requestID, client: session.identityJSON,
                                                  method: call.descriptor.name, target: targetJSON, decision: decisionJSON))
        } catch {
            logger.error("audit log unavailable; refusing request", metadata: ["error": "\(error)", "method": "\(call.descriptor.name)"])
            if dropConnection { session.disconnectAfterReply() }
            throw Dispatcher.rpcError(error)
        }
        if let denial {
            // A denied request still gets its outcome record: one decision and one outcome per request.
            try await appendOutcome(Ticket(requestID: requestID, started: started, client: session.identityJSON,
                                           method: call.descriptor.name, target: targetJSON), outcome: .failure(denial))
            if dropConnection { session.disconnectAfterReply() }
            throw denial
        }
        return GateTicket(Ticket(requestID: requestID, started: started, client: session.identityJSON,
                                 method: call.descriptor.name, target: targetJSON))
    }

    func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws {
        guard let ticket = ticket.state as? Ticket else { return }
        try await appendOutcome(ticket, outcome: outcome)
    }

    private func appendOutcome(_ ticket: Ticket, outcome: Result<MethodResult, RPCError>) async throws {
        let auditOutcome: AuditOutcome = switch outcome {
        case .success: .ok
        case .failure(let error): .error(error.code)
        }
        let elapsed = ContinuousClock.now - ticket.started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        do {
            _ = try await audit.append(AuditEntry(kind: "outcome", requestID: ticket.requestID, client: ticket.client,
                                                  method: ticket.method, target: ticket.target, outcome: auditOutcome, durationMs: ms))
        } catch {
            logger.error("audit outcome could not be written", metadata: ["error": "\(error)", "method": "\(ticket.method)"])
            throw Dispatcher.rpcError(error)
        }
    }

    // MARK: Mapping

    static func clientIdentity(_ session: ClientSession) -> ClientIdentity {
        ClientIdentity(uid: session.identity.uid, pid: session.identity.pid, exe: session.identity.exe,
                       script: session.identity.script, unit: session.identity.unit, label: session.label,
                       connectionID: session.id, origin: session.identity.origin)
    }

    /// What the person is shown in a prompt; never the value being typed.
    static func preview(_ call: GatedCall, target: TargetInfo?) -> String {
        var text = call.descriptor.summary
        if let role = target?.role {
            text = "\(call.descriptor.name) on \(role)"
            if let name = target?.name, !name.isEmpty { text += " \"\(name)\"" }
        }
        if let value = try? call.params.value("value") {
            switch value {
            case .string(let s): text += " (\(s.count) characters)"
            case .int, .double: text += " (to \(JSONWriter.string(value)))"
            default: break
            }
        }
        if let action = try? call.params.optionalString("action") { text += " (action \(action))" }
        return text
    }
}

/// Request ids for audit records: unique per daemon run, readable in logs.
final class RequestCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    private let runID: String

    init() {
        var rng = SystemRandomNumberGenerator()
        runID = String(rng.next() & 0xFFFF_FFFF, radix: 16)
    }

    func next(session: UInt64) -> String {
        let n = value.add(1, ordering: .relaxed).newValue
        return "\(runID)-\(session)-\(n)"
    }
}
