import ATSPI
import Audit
import Broker
import DeskgateAPI
import JSONRPC
import Logging
import Synchronization

/// The gate in front of every gated method: the broker decides, the audit log records.
///
/// Order per request: the target resolved (before this gate) → the broker's decision on it (for
/// mutating classes the client's unchanged executable is its last input) → the decision record made durable →
/// (the handler re-checks the target and acts) → the outcome record made durable → reply.
/// A request whose decision cannot be recorded fails with -32007 and does not run.
struct AuditedBrokerGate: RequestGate {
    let broker: Broker
    let audit: AuditLog
    let logger: Logger
    private let auditIDs = AuditIDs()

    struct Ticket: Sendable {
        let auditID: String
        let started: ContinuousClock.Instant
        let client: JSONValue
        let method: String
        let target: JSONValue?
        /// The handler's notes for the outcome record (nil for refusals before any handler).
        var notes: OutcomeNotes? = nil
    }

    func authorize(_ call: GatedCall) async throws -> GateTicket {
        let session = call.context.session
        let ticket = Ticket(auditID: auditIDs.next(session: session.id), started: ContinuousClock.now,
                            client: session.identityJSON, method: call.descriptor.name, target: Self.targetJSON(call, audit: audit),
                            notes: call.context.outcomeNotes)

        // An unidentified client's listing or stream goes to the broker, which denies it.
        if call.filteredPerApp && Self.clientIdentity(session).isIdentified {
            // The call is accepted; what it shows is decided per app by standing permits.
            let decision: JSONValue = ["effect": "allow", "reason": "filtered_per_app", "rule": .null,
                                       "class": .string(call.riskClass.rawValue)]
            try await appendDecision(ticket, decision)
            return GateTicket(ticket)
        }

        // A ref whose element is no longer named as the client was shown it, for an action: the
        // client meant another element. Refused before any decision; recorded as changed.
        if call.riskClass.isMutating, let element = call.target?.element, element.renamedSinceShown {
            let error = AccessibilityError.changed(ChangeDetail(what: "name", was: element.shownName, now: element.name,
                                                                ref: element.ref)).rpcError
            try await appendOutcome(ticket, outcome: .failure(error))
            throw error
        }

        // The client's executable is an input to the decision (checked after any prompt), so the
        // decision is final once made.
        let request = BrokerRequest(client: Self.clientIdentity(session), method: call.descriptor.name,
                                    riskClass: call.riskClass, target: call.target?.brokerTarget,
                                    interactive: call.interactive, preview: Self.preview(call),
                                    clientUnchanged: { session.executableUnchanged() })
        let decision = await broker.decide(request)
        // A connection whose process exec'd another program is dropped after the reply.
        if decision.execChanged { session.disconnectAfterReply() }
        try await appendDecision(ticket, decision.json)
        if let denial = decision.rpcError {
            // A denied request still gets its outcome record: one decision and one outcome per request.
            try await appendOutcome(ticket, outcome: .failure(denial))
            throw denial
        }
        return GateTicket(ticket)
    }

    func refused(_ call: GatedCall, error: RPCError) async throws {
        var target: JSONValue?
        if let ref = error.data?["ref"] { target = ["ref": ref] }
        let ticket = Ticket(auditID: auditIDs.next(session: call.context.session.id), started: ContinuousClock.now,
                            client: call.context.session.identityJSON, method: call.descriptor.name, target: target)
        try await appendOutcome(ticket, outcome: .failure(error))
    }

    private func appendDecision(_ ticket: Ticket, _ decision: JSONValue) async throws {
        do {
            _ = try await audit.append(AuditEntry(kind: "decision", auditID: ticket.auditID, client: ticket.client,
                                                  method: ticket.method, target: ticket.target, decision: decision))
        } catch {
            logger.error("audit log unavailable; refusing request", metadata: ["error": "\(error)", "method": "\(ticket.method)"])
            throw Dispatcher.rpcError(error)
        }
    }

    /// What the audit records of the target: the resolved facts, and a value being typed as
    /// `{len, hmac}`, or `{len}` alone for a password field.
    static func targetJSON(_ call: GatedCall, audit: AuditLog) -> JSONValue? {
        var object = call.target?.auditJSON
        if let param = call.descriptor.auditedText, let text = try? call.params.optionalString(param) {
            let digest = call.target?.element?.isPassword == true ? AuditLog.lengthOnly(text) : audit.valueDigest(text)
            object = object ?? [:]
            object?.append("value", digest)
        }
        var given = JSONObject()
        for name in call.descriptor.auditedParams {
            if let value = try? call.params.value(name) { given.append(name, value) }
        }
        if !given.isEmpty {
            object = object ?? [:]
            object?.append("params", .object(given))
        }
        return object.map(JSONValue.object)
    }

    func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws {
        guard let ticket = ticket.state as? Ticket else { return }
        try await appendOutcome(ticket, outcome: outcome)
    }

    private func appendOutcome(_ ticket: Ticket, outcome: Result<MethodResult, RPCError>) async throws {
        let auditOutcome: AuditOutcome = switch outcome {
        case .success: .ok
        case .failure(let error) where error.data?["reason"] == "changed": .changed
        case .failure(let error): .error(error.code)
        }
        let elapsed = ContinuousClock.now - ticket.started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        do {
            _ = try await audit.append(AuditEntry(kind: "outcome", auditID: ticket.auditID, client: ticket.client,
                                                  method: ticket.method, target: ticket.target, outcome: auditOutcome, durationMs: ms,
                                                  details: ticket.notes?.all ?? [:]))
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

    /// What the person is shown in a prompt: one plain sentence built from the resolved target
    /// (``PromptSentence``); never the value being typed, only its length.
    static func preview(_ call: GatedCall) -> String {
        PromptSentence.make(method: call.descriptor.name, riskClass: call.riskClass, target: call.target,
                            params: call.params.object)
    }
}

/// Request ids for audit records: unique per daemon run, readable in logs.
final class AuditIDs: Sendable {
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
