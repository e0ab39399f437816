import Audit
import Broker
import DeskgateAPI
import JSONRPC
import Logging

/// A prompt helper's connection as the broker sees it: prompts are JSON-RPC requests to it.
struct SessionPromptChannel: PromptHelperChannel {
    let session: ClientSession
    let identity: ClientIdentity

    func prompt(_ params: JSONValue, timeout: Duration) async throws -> JSONValue {
        // The broker runs the prompt's own timer; the transport waits longer so that an
        // unanswered prompt ends as a timeout, not as a helper failure.
        try await session.request(ServerMessages.agentPrompt, params, timeout: timeout + .seconds(30))
    }

    func cancel(promptID: String) async {
        session.notify(ServerMessages.agentCancel, ["prompt_id": .string(promptID)])
    }
}

/// Broker methods: helper registration, grants, dry-run checks.
enum BrokerHandlers {
    static func register(into table: inout MethodTable, broker: Broker, audit: AuditLog?, resolveTarget: @escaping @Sendable (String, ParamsObject, RequestContext) async throws -> RequestTarget?, logger: Logger) {
        table.register(AgentRegister.self) { _, context in
            let session = context.session
            let identity = AuditedBrokerGate.clientIdentity(session)
            try broker.registerHelper(SessionPromptChannel(session: session, identity: identity))
            return ["registered": true]
        }

        table.register(GrantsList.self) { _, _ in broker.listGrants() }

        // Revoking is never blocked: not by policy, not by a broken policy file, not by an
        // unwritable audit log (the record is best effort; the broker's own event is logged).
        table.register(GrantsRevoke.self) { params, context in
            let id = try params.string("id")
            let revoked = broker.revoke(id: id)
            await recordBestEffort(audit, logger, AuditEntry(kind: "grant_revoke_request", client: context.session.identityJSON,
                                                             method: GrantsRevoke.name, details: ["id": .string(id), "revoked": .bool(revoked)]))
            return ["revoked": .bool(revoked)]
        }
        table.register(GrantsRevokeAll.self) { _, context in
            let count = broker.revokeAll()
            await recordBestEffort(audit, logger, AuditEntry(kind: "grant_revoke_request", client: context.session.identityJSON,
                                                             method: GrantsRevokeAll.name, details: ["revoked": JSONValue(count)]))
            return ["revoked": JSONValue(count)]
        }

        table.register(BrokerCheck.self) { params, context in
            let method = try params.string("method")
            guard let descriptor = DeskgateAPI.descriptor(named: method) else { throw RPCError.methodNotFound(method) }
            guard let riskClass = descriptor.riskClass else {
                return ["effect": "allow", "rule": .null, "reason": "ungated", "class": .null]
            }
            // The inner params are validated like the real request would be, then its target is resolved.
            let inner: ParamsObject
            let raw = try params.value("params")
            do throws(RPCError) {
                inner = try ParamsObject(validating: raw, fields: descriptor.fields)
            } catch var e {
                if let field = e.data?["field"]?.stringValue { e.data = ["field": .string("params.\(field)")] }
                throw e
            }
            let target = try await resolveTarget(method, inner, context)
            let request = BrokerRequest(client: AuditedBrokerGate.clientIdentity(context.session), method: method,
                                        riskClass: riskClass, target: target,
                                        interactive: (try? inner.bool("interactive", default: true)) ?? true)
            let decision = broker.check(request)
            var result = decision.json.objectValue ?? [:]
            result["reason"] = .string(decision.reason?.rawValue ?? decision.message)
            result["message"] = .string(decision.message)
            return .object(result)
        }
    }

    static func recordBestEffort(_ audit: AuditLog?, _ logger: Logger, _ entry: AuditEntry) async {
        guard let audit else { return }
        do {
            _ = try await audit.append(entry)
        } catch {
            logger.warning("audit record not written", metadata: ["kind": "\(entry.kind)", "error": "\(error)"])
        }
    }
}

/// `audit.query` and `audit.verify` (class admin).
enum AuditHandlers {
    static func register(into table: inout MethodTable, audit: AuditLog) {
        table.register(AuditQuery.self) { params, _ in
            let filter = try AuditFilter(json: .object(JSONObject(params.object.members.filter { $0.key != "interactive" })))
            return try await audit.query(filter).json
        }
        table.register(AuditVerify.self) { _, _ in
            await audit.verify().json
        }
    }
}
