import ATSPI
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

    func clientsChanged(agents: Int) async {
        session.notify(ServerMessages.agentClients, ["agents": .int(Int64(agents))])
    }
}

/// Broker methods: helper registration, grants, dry-run checks.
enum BrokerHandlers {
    /// Resolves a method's target exactly as the real call would (`broker.check`).
    typealias TargetResolver = @Sendable (String, ParamsObject, RequestContext) async throws -> ResolvedTarget?

    /// The executables of the apps running now (for pinning a task's scope).
    typealias LiveExecutables = @Sendable () async throws -> Set<String>

    static func register(into table: inout MethodTable, broker: Broker, audit: AuditLog?, resolveTarget: @escaping TargetResolver,
                         liveExecutables: @escaping LiveExecutables, logger: Logger) {
        table.register(HelperRegister.self) { params, context in
            let session = context.session
            try broker.registerHelper(SessionPromptChannel(session: session, identity: context.client), notifyClients: params.notifyClients)
            return ["registered": true]
        }

        table.register(GrantsList.self) { _, _ in broker.listGrants() }

        // Revoking is never blocked: not by policy, not by a broken policy file, not by an
        // unwritable audit log (the record is best effort; the broker's own event is logged).
        table.register(GrantsRevoke.self) { params, context in
            let revoked = broker.revoke(id: params.id)
            await recordBestEffort(audit, logger, AuditEntry(kind: "grant_revoke_request", client: context.session.identityJSON,
                                                             method: GrantsRevoke.name, details: ["id": .string(params.id), "revoked": .bool(revoked)]))
            return ["revoked": .bool(revoked)]
        }
        table.register(GrantsRevokeAll.self) { _, context in
            let count = broker.revokeAll()
            await recordBestEffort(audit, logger, AuditEntry(kind: "grant_revoke_request", client: context.session.identityJSON,
                                                             method: GrantsRevokeAll.name, details: ["revoked": JSONValue(count)]))
            return ["revoked": JSONValue(count)]
        }

        // The brake is never gated: anyone may pull it, also with a broken policy or audit log.
        table.register(BrokerPause.self) { params, context in
            broker.pause(by: context.client, reason: params.reason).json
        }
        table.register(BrokerHalt.self) { params, context in
            let (pause, revoked, tasks) = broker.halt(by: context.client, reason: params.reason)
            await recordBestEffort(audit, logger, AuditEntry(kind: "grant_revoke_request", client: context.session.identityJSON,
                                                             method: BrokerHalt.name, details: ["revoked": JSONValue(revoked)]))
            var result = pause.json.objectValue ?? [:]
            result["grants_revoked"] = JSONValue(revoked)
            result["tasks_ended"] = JSONValue(tasks)
            return .object(result)
        }
        // Lifting it is gated (class control): the gate has decided, by a rule naming
        // broker.resume or by a person, before this runs.
        table.register(BrokerResume.self) { _, context in
            let lifted = broker.resume(by: context.client)
            var result = PauseState.json(nil).objectValue ?? [:]
            result["was_paused"] = .bool(lifted != nil)
            return .object(result)
        }

        // Tasks: the person is asked by the broker itself (kind task); status and end act on the
        // caller's own tasks only.
        table.register(TaskBegin.self) { params, context in
            let scope = try params.scope.enumerated().map { index, entry throws(RPCError) in
                try TaskScopeEntry(json: entry, field: "scope.\(index)")
            }
            // Pinned to live executables: each entry's app_exe must be an app running now.
            let running = try await liveExecutables()
            for (index, entry) in scope.enumerated() where !running.contains(entry.appExe) {
                throw RPCError(.appNotFound, "no running app has the executable \(entry.appExe) (scope entry \(index)); start the app first",
                               data: ["field": .string("scope.\(index).app_exe")])
            }
            let task = TaskRequest(title: params.title, scope: scope, expiresIn: .seconds(params.expiresIn),
                                   idle: params.idle.map { .seconds($0) }, maxActions: params.maxActions)
            return try await broker.beginTask(task, client: context.client)
        }
        table.register(TaskStatus.self) { params, context in
            ["tasks": .array(broker.taskStatus(params.taskID, client: context.client))]
        }
        table.register(TaskEnd.self) { params, context in
            ["ended": .bool(broker.endTask(params.taskID, client: context.client))]
        }

        table.register(BrokerCheck.self) { params, context in
            try await check(params, context: context, broker: broker, resolveTarget: resolveTarget)
        }
    }

    /// `broker.check`: the decision the real call would get, without prompting or consuming
    /// anything. The target is resolved as the real call resolves it. It tells nothing about an
    /// element whose app the caller may not observe: then the answer names no rule and no element.
    static func check(_ params: BrokerCheck.Params, context: RequestContext, broker: Broker,
                      resolveTarget: TargetResolver) async throws -> JSONValue {
        guard let descriptor = DeskgateAPI.descriptor(named: params.method) else { throw RPCError.methodNotFound(params.method) }
        switch descriptor.gating {
        case .ungated:
            return ["effect": "allow", "rule": .null, "reason": "ungated", "class": .null,
                    "message": .string("\(descriptor.name) is never gated.")]
        case .filteredPerApp(let riskClass):
            return ["effect": "allow", "rule": .null, "reason": "filtered_per_app", "class": .string(riskClass.rawValue),
                    "message": .string("The call is accepted; it shows only apps this client may observe by a rule or a remembered grant (it never prompts).")]
        case .gated(let riskClass):
            // The inner params are validated like the real request would be, then its target is resolved.
            let inner: ParamsObject
            do throws(RPCError) {
                inner = try ParamsObject(validating: params.params, fields: descriptor.fields)
            } catch var e {
                if let field = e.data?["field"]?.stringValue { e.data = ["field": .string("params.\(field)")] }
                throw e
            }
            let target = try await resolveTarget(params.method, inner, context)
            let client = context.client
            if riskClass.isMutating, let element = target?.element, element.renamedSinceShown {
                return ["effect": "deny", "rule": .null, "reason": "changed", "class": .string(riskClass.rawValue),
                        "message": "The element was renamed since it was shown; the call would fail with -32003 changed."]
            }
            let request = BrokerRequest(client: client, method: params.method, riskClass: riskClass, target: target?.brokerTarget,
                                        interactive: (try? inner.bool("interactive", default: true)) ?? true)
            let decision = broker.check(request)
            var result = decision.json.objectValue ?? [:]
            result["reason"] = .string(decision.reason?.rawValue ?? decision.message)
            result["message"] = .string(decision.message)
            if let target, target.element != nil,
               !StandingDecisions(broker: broker).mayObserve(client, method: ElementsFind.name, app: target.app)
            {
                result["rule"] = .null
                result["message"] = .string("The broker would \(decision.effect == .allow ? "allow" : decision.effect == .ask ? "ask a person about" : "deny") this request. Its element is not described: this client may not observe its app.")
            }
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
            try await audit.query(try AuditFilter(json: .object(params.filter))).json
        }
        table.register(AuditVerify.self) { _, _ in
            await audit.verify().json
        }
    }
}
