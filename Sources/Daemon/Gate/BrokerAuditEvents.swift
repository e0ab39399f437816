import Audit
import Broker
import DeskgateAPI
import JSONRPC

/// Broker events that belong in the audit log (policy loads, grants, helper registrations).
enum BrokerAuditEvents {
    static func entry(for event: BrokerEvent) -> AuditEntry? {
        switch event {
        case .policyLoaded(let path, let layer, let sha256, let rules):
            return AuditEntry(kind: "policy_load", details: ["path": .string(path), "layer": .string("\(layer)"),
                                                            "sha256": .string(sha256), "rules": JSONValue(rules)])
        case .policyError(let path, let layer, let line, let message):
            return AuditEntry(kind: "policy_error", details: ["path": .string(path), "layer": .string("\(layer)"),
                                                             "line": line.map { JSONValue($0) } ?? .null, "message": .string(message)])
        case .grantsError(let path, let message):
            return AuditEntry(kind: "grants_error", details: ["path": .string(path), "message": .string(message)])
        case .grantCreated(let grant):
            return AuditEntry(kind: "grant_remembered", details: ["grant": grant.json])
        case .grantRevoked(let grant):
            return AuditEntry(kind: "grant_revoked", details: ["grant": grant.json])
        case .helperRegistered(let identity):
            return AuditEntry(kind: "helper_registered", client: identity.json)
        case .helperUnregistered(let identity):
            return AuditEntry(kind: "helper_unregistered", client: identity.json)
        case .paused(let pause, let restored):
            return AuditEntry(kind: "pause", client: pause.by,
                              details: ["since": pause.json["since"] ?? .null, "reason": JSONValue(pause.reason),
                                        "restored": .bool(restored)])
        case .resumed(let by, let pause):
            return AuditEntry(kind: "resume", client: by,
                              details: ["paused_since": pause.json["since"] ?? .null, "paused_by": pause.by])
        case .sessionLock(let locked):
            return AuditEntry(kind: locked ? "session_locked" : "session_unlocked")
        case .taskBegun(let task):
            return AuditEntry(kind: "task_begin", client: task["client"], details: ["task": task])
        case .taskEnded(let id, let why, let task):
            return AuditEntry(kind: "task_end", client: task["client"],
                              details: ["task_id": .string(id), "why": .string(why.rawValue), "task": task])
        case .grantsLoaded, .promptSent, .promptEnded, .decisionsChanged:
            return nil
        }
    }
}

/// Used when the audit log could not be opened: every gated request fails closed with -32007.
struct AuditUnavailableGate: RequestGate {
    func authorize(_ call: GatedCall) async throws -> GateTicket {
        throw RPCError(.auditUnavailable, "the audit log cannot be written; gated requests are refused until it can (see daemon.info)")
    }
    func complete(_ ticket: GateTicket, outcome: Result<MethodResult, RPCError>) async throws {}
    func refused(_ call: GatedCall, error: RPCError) async throws {
        throw RPCError(.auditUnavailable, "the audit log cannot be written; gated requests are refused until it can (see daemon.info)")
    }
}
