public import DeskgateAPI
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC

/// Task sessions: a person approves a bounded task once; requests of that client process inside
/// its scope that would otherwise ask by default are then allowed without prompts.
extension Broker {
    /// Asks the person, through the prompt helper (`kind: "task"`), to approve `task` for
    /// `client`. Refused before any prompt when the client is unidentified, deskgate is paused,
    /// or the admin layer forbids a scope entry. Returns `{task_id, expires_at}`.
    public func beginTask(_ task: TaskRequest, client: ClientIdentity) async throws(RPCError) -> JSONValue {
        let request = BrokerRequest(client: client, method: TaskBegin.name, riskClass: .act, target: nil,
                                    preview: "approve the task \(PromptText.sanitize(task.title, limit: 200))")
        if !client.isIdentified { throw Evaluator.deny(request, .unidentified).rpcError! }
        if let paused = pausedDenial(request) { throw paused.rpcError! }
        if let locked = lockedDenial(request) { throw locked.rpcError! }
        let limit = withState { state, _ in state.policy.maxTaskSeconds }
        if task.expiresIn > .seconds(limit) {
            throw RPCError(.invalidParams, "expires_in_s may be at most \(limit) (the administrator's max_task_s)",
                           data: ["field": "expires_in_s", "maximum": JSONValue(limit)])
        }
        if let refusal = adminRefusal(task, client: client) { throw refusal }
        if let blocker = promptBlocker(request) { throw Evaluator.deny(request, .noHelper, detail: blocker).rpcError! }
        let decision = await personDecides(request, task: task)
        if let denial = decision.rpcError { throw denial }
        let now = now()
        let session = TaskSession(id: RandomID.taskID(), title: task.title, scope: task.scope, client: client, created: now,
                                  expires: now.addingTimeInterval(task.expiresIn.seconds), idle: task.idle?.seconds,
                                  maxActions: task.maxActions, lastUsed: now, usedPerEntry: task.scope.map { _ in 0 })
        let started: Bool = withState { state, deferred in
            // Someone paused while the person read the prompt: the task does not begin. (A client
            // that went away meanwhile cancelled its request, and with it this call.)
            if state.pause != nil { return false }
            state.tasks.insert(session)
            deferred.events.append(.taskBegun(session.json(now: now)))
            deferred.decisionsChanged = true
            return true
        }
        guard started else { throw pausedDenial(request)?.rpcError ?? RPCError(.denied, "Denied: deskgate was paused meanwhile.") }
        armTimer(session.id, after: task.expiresIn)
        if let idle = task.idle { armTimer(session.id, after: idle) }
        return ["task_id": .string(session.id), "expires_at": .string(Timestamp.rfc3339(session.expires, milliseconds: true)),
                "prompt_id": JSONValue(decision.promptID)]
    }

    /// Ends one of the caller's own tasks. False when it has no such live task.
    public func endTask(_ id: String, client: ClientIdentity) -> Bool {
        withState { state, deferred in
            guard let task = state.tasks.tasks[id], task.isOwn(client),
                  let removed = state.tasks.remove(id) else { return false }
            taskEndedLocked(&state, &deferred, removed, .ended)
            return true
        }
    }

    /// The caller's own live tasks (one, when `id` is given), with their counters.
    public func taskStatus(_ id: String?, client: ClientIdentity) -> [JSONValue] {
        let now = now()
        expireTasks(now: now)
        return withState { state, _ in
            state.tasks.all.filter { $0.isOwn(client) && (id == nil || $0.id == id) }.map { $0.json(now: now) }
        }
    }

    /// The allow a task gives `request`, if one of its client's tasks covers it. `consume`: count
    /// it (`broker.check` does not). A task that reached its limit with it ends here. Called
    /// under the lock of the evaluation it follows, so it costs no lock or clock of its own.
    func coveredByTaskLocked(_ state: inout State, _ deferred: inout Deferred, _ request: BrokerRequest, now: Date,
                             consume: Bool) -> Decision? {
        guard request.riskClass <= .write, state.pause == nil, !state.tasks.tasks.isEmpty,
              let (id, ended) = state.tasks.cover(request, now: now, consume: consume) else { return nil }
        if let ended, let task = state.tasks.remove(id) {
            // The request that reached max_actions is the last one it covers.
            taskEndedLocked(&state, &deferred, task, ended)
        }
        var decision = Evaluator.allow(request)
        decision.taskID = id
        return decision
    }

    /// Ends tasks past their expiry or idle time (also done lazily on every status read).
    func expireTasks(now: Date) {
        withState { state, deferred in
            for (task, why) in state.tasks.removeEnded(at: now) { taskEndedLocked(&state, &deferred, task, why) }
        }
    }

    func taskEndedLocked(_ state: inout State, _ deferred: inout Deferred, _ task: TaskSession, _ why: TaskEnding) {
        for timer in state.taskTimers.removeValue(forKey: task.id) ?? [] { timer.cancel() }
        deferred.events.append(.taskEnded(id: task.id, why: why, task: task.json(now: now())))
        deferred.decisionsChanged = true
    }

    /// A one-shot timer that ends the task if it is over by then (expiry, or idleness: a task
    /// used meanwhile gets a new timer for the rest of its idle time). No periodic wake-ups.
    private func armTimer(_ id: String, after delay: Duration) {
        let sleep = config.sleep
        let timer = Task { [weak self] in
            try? await sleep(delay)
            guard !Task.isCancelled, let self else { return }
            let now = self.now()
            let rearm: Duration? = self.withState { state, deferred -> Duration? in
                guard let task = state.tasks.tasks[id] else { return nil }
                if let why = task.ended(at: now) {
                    _ = state.tasks.remove(id)
                    self.taskEndedLocked(&state, &deferred, task, why)
                    return nil
                }
                guard let idle = task.idle, now < task.expires else { return nil }
                let left = idle - now.timeIntervalSince(task.lastUsed)
                return left > 0 ? .milliseconds(Int64(left * 1000) + 1) : nil
            }
            if let rearm { self.armTimer(id, after: rearm) }
        }
        withState { state, _ in
            if state.tasks.all.contains(where: { $0.id == id }) {
                state.taskTimers[id, default: []].append(timer)
            } else {
                timer.cancel()
            }
        }
    }

    /// Why the admin layer forbids an entry of `task`, if it does: its deny rules and its
    /// `default = "deny"` are refused at `task.begin`, with the reason, before anyone is asked.
    private func adminRefusal(_ task: TaskRequest, client: ClientIdentity) -> RPCError? {
        let now = now()
        return withState { state, _ -> RPCError? in
            for (index, entry) in task.scope.enumerated() {
                let target = TargetInfo(appName: entry.app?.literal, appExe: entry.appExe, role: entry.role,
                                        name: entry.name?.literal, origin: entry.origin?.literal)
                let probes: [(String, RiskClass)] = entry.actionClasses.sorted().map { ("", $0) }
                    + entry.actionMethods.sorted().compactMap { method in
                        DeskgateAPI.descriptor(named: method)?.riskClass.map { (method, $0) }
                    }
                for (method, riskClass) in probes {
                    let probe = BrokerRequest(client: client, method: method, riskClass: riskClass, target: target)
                    var matches = RuleMatches()
                    state.policy.admin.index.collect(probe, now: now, into: &matches)
                    let what = method.isEmpty ? riskClass.rawValue : method
                    if let rule = matches.adminDeny {
                        return RPCError(.denied, "Denied: the administrator's rule '\(rule.id)' forbids \(what) in scope entry \(index) (\(entry.appExe))\(rule.reason.map { ": \($0)" } ?? ""); a task cannot lift it.",
                                        data: ["reason": .string(DenyReason.lockedDown.rawValue), "rule": .string(rule.id),
                                               "class": .string(riskClass.rawValue), "field": .string("scope.\(index)")])
                    }
                    if state.policy.defaultEffect == .deny, state.policy.defaultFromAdmin, matches.allow == nil {
                        return RPCError(.denied, "Denied: the administrator's policy denies everything it does not allow, and no rule allows \(what) in scope entry \(index) (\(entry.appExe)); a task cannot lift it.",
                                        data: ["reason": .string(DenyReason.lockedDown.rawValue), "class": .string(riskClass.rawValue),
                                               "field": .string("scope.\(index)")])
                    }
                }
            }
            return nil
        }
    }

    /// The task prompt's params: `kind: "task"`, the title (the agent's own words), the scope,
    /// the expiry and the limits.
    static func taskPromptParams(_ base: JSONValue, _ task: TaskRequest, now: Date) -> JSONValue {
        var object = base.objectValue ?? [:]
        object["kind"] = "task"
        object["title"] = .string(String(task.title.prefix(200)))
        object["scope"] = .array(task.scope.map(\.json))
        object["expires_at"] = .string(Timestamp.rfc3339(now.addingTimeInterval(task.expiresIn.seconds)))
        object["max_actions"] = task.maxActions.map { JSONValue($0) } ?? .null
        object["idle_s"] = task.idle.map { JSONValue(Int($0.seconds)) } ?? .null
        return .object(object)
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    var seconds: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
