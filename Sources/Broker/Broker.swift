import DeskgateAPI
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC
public import Logging
import Dispatch
import Synchronization

/// The permission broker: decides every gated request from verified identity, policy layers,
/// remembered grants and, when asked to, a person answering through the prompt helper.
///
/// The jobs are split: ``PolicyLoader`` builds an immutable ``PolicySnapshot``; ``Evaluator``
/// decides from it purely (no clock, no files, no processes: ``DecisionFacts`` are read first);
/// ``PromptQueue`` and ``PromptSessions`` are state machines for whose turn it is to prompt and
/// how each prompt ended; ``GrantStore`` and ``GrantFileWriter`` keep remembered grants. This
/// type holds their state behind one mutex (nothing blocking happens under it) and carries out
/// what they return: resuming waiting requests, sending prompts, starting and stopping timers.
public final class Broker: Sendable {
    let config: BrokerConfig
    let inspector: any ProcessInspector
    let now: @Sendable () -> Date
    let events: @Sendable (BrokerEvent) -> Void
    let logger: Logger
    let state: Mutex<State>
    let grantFile: GrantFileWriter

    public init(config: BrokerConfig, inspector: any ProcessInspector, now: @escaping @Sendable () -> Date = { Date() },
                events: @escaping @Sendable (BrokerEvent) -> Void = { _ in }, logger: Logger) {
        self.config = config
        self.inspector = inspector
        self.now = now
        self.events = events
        self.logger = logger
        grantFile = GrantFileWriter(path: config.grantsFile, logger: logger)
        state = Mutex(State(policy: .unloaded(promptHelpers: config.defaultPromptHelpers),
                            queue: PromptQueue(maxWaitingPerClient: config.maxQueuedPerClient,
                                               maxWaitingTotal: config.maxQueuedTotal)))
    }

    // MARK: - State

    struct HelperState: Sendable {
        var channel: any PromptHelperChannel
        var identity: ClientIdentity
        /// It asked for `agent.clients` notifications (`agent.register {notify_clients: true}`).
        var wantsClientCounts = false
    }

    /// What the broker keeps for a prompt being shown, beside its ``PromptSessions`` entry.
    struct PromptWait: Sendable {
        var continuation: CheckedContinuation<PromptSessions.Ending, Never>
        var channel: any PromptHelperChannel
        var timer: Task<Void, Never>?
        var call: Task<Void, Never>?
    }

    struct State: Sendable {
        var policy: PolicySnapshot
        var grants = GrantStore()
        var helper: HelperState?
        var queue: PromptQueue
        var sessions = PromptSessions()
        /// Requests waiting for their turn to prompt, by token.
        var waiting: [UInt64: CheckedContinuation<PromptQueue.Admission, Never>] = [:]
        var prompts: [String: PromptWait] = [:]
        var nextToken: UInt64 = 0
        /// Sensitive-list answers per (app name, app exe); cleared on reload.
        var sensitiveCache: [SensitiveKey: Bool] = [:]
        /// The brake, when pulled (kept in ``BrokerConfig/pauseFile``).
        var pause: PauseState?
        /// The session's screen is locked (from the screensaver's `ActiveChanged`).
        var locked = false
        /// Connected clients, the helper's own connection included, and the count of the others
        /// last sent to the helper (`agent.clients`).
        var clients = 0
        var agentsSent: Int?
        /// Tasks people approved (never persisted), and their one-shot expiry and idle timers.
        var tasks = TaskTable()
        var taskTimers: [String: [Task<Void, Never>]] = [:]
        /// Counts changes that can change a decision (policy reloads, grants created, revoked or
        /// expired), so standing decisions know when to be made again.
        var generation: UInt64 = 0

        init(policy: PolicySnapshot, queue: PromptQueue) {
            self.policy = policy
            self.queue = queue
        }

        func evaluator(grantsFile: String, now: Date) -> Evaluator {
            var evaluator = Evaluator(policy: policy, grantsFileError: grants.fileError, grantsFile: grantsFile, now: now)
            evaluator.pause = pause
            evaluator.locked = locked
            return evaluator
        }

        mutating func isSensitive(_ target: TargetInfo?) -> Bool {
            guard let target, target.appName != nil || target.appExe != nil else { return false }
            let key = SensitiveKey(name: target.appName, exe: target.appExe)
            if let known = sensitiveCache[key] { return known }
            let answer = policy.sensitive.isSensitive(target)
            if sensitiveCache.count >= 4096 { sensitiveCache.removeAll(keepingCapacity: true) }
            sensitiveCache[key] = answer
            return answer
        }
    }

    struct SensitiveKey: Hashable, Sendable {
        var name: String?
        var exe: String?
    }

    /// Work collected under the lock and run after it is released (events, continuations,
    /// helper notifications), so callbacks can never deadlock on the broker.
    struct Deferred {
        var events: [BrokerEvent] = []
        var actions: [@Sendable () -> Void] = []
        var persist = false
        /// Decisions may have changed: bump the generation and tell the daemon once.
        var decisionsChanged = false
    }

    @discardableResult
    func withState<T>(_ body: (inout State, inout Deferred) -> T) -> T {
        var deferred = Deferred()
        let (result, generation) = state.withLock { state -> (T, UInt64?) in
            let result = body(&state, &deferred)
            guard deferred.decisionsChanged else { return (result, nil) }
            state.generation &+= 1
            return (result, state.generation)
        }
        for event in deferred.events { events(event) }
        if let generation { events(.decisionsChanged(generation: generation)) }
        for action in deferred.actions { action() }
        if deferred.persist { schedulePersist() }
        return result
    }

    // MARK: - Loading

    /// Re-reads every policy file and the grants file. Files that fail to load make their layer
    /// deny everything (reason `policy_error`); the returned status and ``status`` say which.
    /// Does blocking file I/O: call it at start-up or from the SIGHUP handler's thread. It runs
    /// on the grants file's queue, so it never reads a grants file a queued write is replacing.
    @discardableResult
    public func reload() -> PolicyStatus {
        let loaded = grantFile.queue.sync { PolicyLoader.load(config) }
        let now = now()
        let kept = PauseFile(path: config.pauseFile).load(now: now)
        withState { state, deferred in
            // A kept pause is restored; a pause in force is never lifted by a reload.
            if state.pause == nil, let kept {
                state.pause = kept
                deferred.events.append(.paused(kept, restored: true))
            }
            state.policy = loaded.policy
            state.grants.load(loaded.grants, now: now)
            state.sensitiveCache = [:]
            deferred.decisionsChanged = true
            // A helper that is no longer listed loses its registration.
            if let helper = state.helper, !state.policy.promptHelpers.contains(helper.identity.exe) {
                unregisterHelperLocked(&state, &deferred, reason: "the prompt helper is no longer listed in prompt_agents")
            }
            deferred.events = loaded.events + deferred.events
        }
        for line in loaded.policy.status.errors {
            logger.error("policy file rejected; its layer denies everything", metadata: ["error": "\(line)"])
        }
        return loaded.policy.status
    }

    // MARK: - Evaluation

    /// The facts a decision needs about processes, read outside the lock. `forPrompt` adds
    /// whether the helper may have been started by the client (only asked when a prompt is near).
    private func facts(_ request: BrokerRequest, helper: ClientIdentity?, forPrompt: Bool) -> DecisionFacts {
        var facts = DecisionFacts(helperConnection: helper?.connectionID)
        guard let helper else { return facts }
        if let appPid = request.target?.appPid, appPid != helper.pid {
            facts.appStartedByHelper = Provenance.mayHaveStarted((appPid, inspector.origin(of: appPid)),
                                                                 by: (helper.pid, helper.origin), inspector: inspector)
        }
        if forPrompt, helper.pid != request.client.pid {
            facts.helperStartedByClient = Provenance.mayHaveStarted((helper.pid, helper.origin),
                                                                    by: (request.client.pid, request.client.origin),
                                                                    inspector: inspector)
        }
        return facts
    }

    /// Runs `body` under the lock with the evaluator and facts read for the helper registered
    /// now; if another helper registered in between, the facts are read again.
    private func evaluating<T>(_ request: BrokerRequest, forPrompt: Bool,
                               _ body: (inout State, inout Deferred, Evaluator, DecisionFacts) -> T) -> T {
        var helper = withState { state, _ in state.helper?.identity }
        for _ in 0..<4 {
            var facts = self.facts(request, helper: helper, forPrompt: forPrompt)
            let now = now()
            let result: T? = withState { state, deferred in
                guard state.helper?.identity.connectionID == facts.helperConnection else {
                    helper = state.helper?.identity
                    return nil
                }
                facts.sensitive = state.isSensitive(request.target)
                let evaluator = state.evaluator(grantsFile: config.grantsFile, now: now)
                return body(&state, &deferred, evaluator, facts)
            }
            if let result { return result }
        }
        // Helpers coming and going without pause: decide as if whatever could have been started
        // by whom was (fail closed).
        let now = now()
        return withState { state, deferred in
            var facts = DecisionFacts(helperConnection: state.helper?.identity.connectionID)
            facts.sensitive = state.isSensitive(request.target)
            if state.helper != nil {
                facts.appStartedByHelper = request.target?.appPid == nil ? nil : .unknown
                facts.helperStartedByClient = .unknown
            }
            let evaluator = state.evaluator(grantsFile: config.grantsFile, now: now)
            return body(&state, &deferred, evaluator, facts)
        }
    }

    /// Several requests by rules and grants alone, under one lock, the facts read once per
    /// target app (listings and content ask about many elements of one app at once).
    func evaluateAll(_ requests: [(BrokerRequest, grantMethods: Set<String>)]) -> [Evaluation] {
        guard !requests.isEmpty else { return [] }
        let helper = withState { state, _ in state.helper?.identity }
        var factsByApp: [Int32?: DecisionFacts] = [:]
        for (request, _) in requests where factsByApp[request.target?.appPid] == nil {
            factsByApp[request.target?.appPid] = facts(request, helper: helper, forPrompt: false)
        }
        let now = now()
        let batch: [Evaluation]? = withState { state, _ in
            guard state.helper?.identity.connectionID == helper?.connectionID else { return nil }
            let evaluator = state.evaluator(grantsFile: config.grantsFile, now: now)
            return requests.map { request, grantMethods in
                var facts = factsByApp[request.target?.appPid] ?? DecisionFacts()
                facts.sensitive = state.isSensitive(request.target)
                return evaluator.evaluate(request, facts, helperPid: state.helper?.identity.pid, grants: state.grants.table, grantMethods: grantMethods)
            }
        }
        // The helper changed meanwhile: one at a time, each with fresh facts.
        return batch ?? requests.map { evaluate($0.0, grantMethods: $0.grantMethods) }
    }

    /// Rules and grants alone, under the lock.
    func evaluate(_ request: BrokerRequest, grantMethods: Set<String> = []) -> Evaluation {
        evaluating(request, forPrompt: false) { state, _, evaluator, facts in
            evaluator.evaluate(request, facts, helperPid: state.helper?.identity.pid, grants: state.grants.table, grantMethods: grantMethods)
        }
    }

    /// Rules and grants, then, for what would ask because of the default, the client's task
    /// sessions (where remembered grants stand), under one lock. `consumingTask`: count the
    /// request against the task that covers it (not for `broker.check`).
    func evaluate(_ request: BrokerRequest, consumingTask consume: Bool) -> Evaluation {
        evaluating(request, forPrompt: false) { state, deferred, evaluator, facts in
            let evaluation = evaluator.evaluate(request, facts, helperPid: state.helper?.identity.pid, grants: state.grants.table)
            if case .ask(explicit: .none) = evaluation,
               let covered = coveredByTaskLocked(&state, &deferred, request, now: evaluator.now, consume: consume) {
                return .decided(covered)
            }
            return evaluation
        }
    }

    /// Why no prompt can be shown for this client now, if so.
    func promptBlocker(_ request: BrokerRequest) -> String? {
        evaluating(request, forPrompt: true) { state, _, _, facts in
            Evaluator.promptBlocker(request, helper: state.helper?.identity, facts)
        }
    }

    // MARK: - Public decisions

    /// What would happen, without prompting and without consuming anything (`broker.check`).
    /// Returns ask when a prompt would be shown.
    public func check(_ request: BrokerRequest) -> Decision {
        switch evaluate(request, consumingTask: false) {
        case .decided(let decision):
            return decision
        case .ask(let explicit):
            if !request.interactive { return Evaluator.deny(request, .wouldPrompt, rule: explicit) }
            if let locked = lockedDenial(request) { return locked }
            if let blocker = promptBlocker(request) { return Evaluator.deny(request, .noHelper, rule: explicit, detail: blocker) }
            return Decision(effect: .ask, ruleID: explicit?.id, request: request, ruleReason: explicit?.reason)
        }
    }

    /// Decides a request, prompting a person when the policy asks for it. Never throws: a
    /// denial is a ``Decision`` whose ``Decision/rpcError`` the daemon sends. If the calling task
    /// is cancelled, a pending prompt is withdrawn (`agent.cancel`) and nothing is remembered.
    ///
    /// For `act` and `write`, the request's ``BrokerRequest/clientUnchanged`` is asked as the
    /// decision's last input (after any prompt): a client that exec'd another program since it
    /// connected is denied, so an allow, once returned, is final.
    public func decide(_ request: BrokerRequest) async -> Decision {
        let decision = await decideByPolicyAndPerson(request)
        if decision.effect == .allow, request.riskClass.isMutating, let unchanged = request.clientUnchanged, !unchanged() {
            var denied = Evaluator.deny(request, .policy,
                                        detail: "the client executable changed since it connected (was \(request.client.exe)); reconnect to be identified again")
            denied.execChanged = true
            denied.prompted = decision.prompted
            denied.promptID = decision.promptID
            return denied
        }
        return decision
    }

    private func decideByPolicyAndPerson(_ request: BrokerRequest) async -> Decision {
        let explicit: PolicyRule?
        switch evaluate(request, consumingTask: true) {
        case .decided(let decision): return decision
        case .ask(let rule): explicit = rule
        }
        if !request.interactive { return Evaluator.deny(request, .wouldPrompt, rule: explicit) }
        if let locked = lockedDenial(request) { return locked }
        if let blocker = promptBlocker(request) { return Evaluator.deny(request, .noHelper, rule: explicit, detail: blocker) }
        return await personDecides(request)
    }

    /// Queues the request for its turn and asks the person (`task`: a task's approval).
    func personDecides(_ request: BrokerRequest, task: TaskRequest? = nil) async -> Decision {
        let ticket = withState { state, _ -> PromptQueue.Ticket in
            state.nextToken += 1
            return PromptQueue.Ticket(token: state.nextToken, clientPid: request.client.pid,
                                      connectionID: request.client.connectionID, requestID: nil)
        }
        let decision = await withTaskCancellationHandler {
            await self.queuedPrompt(request, ticket: ticket, task: task)
        } onCancel: {
            self.withState { state, deferred in
                self.apply(state.queue.cancel(token: ticket.token), &state, &deferred)
            }
        }
        withState { state, _ in
            if let next = state.queue.release(ticket), let waiter = state.waiting.removeValue(forKey: next) {
                waiter.resume(returning: .go)
            }
        }
        return decision
    }

    // MARK: - Queue

    private func queuedPrompt(_ request: BrokerRequest, ticket: PromptQueue.Ticket, task: TaskRequest?) async -> Decision {
        let admission = await withCheckedContinuation { (continuation: CheckedContinuation<PromptQueue.Admission, Never>) in
            withState { state, deferred in
                if let verdict = state.queue.admit(ticket) {
                    deferred.actions.append { continuation.resume(returning: verdict) }
                } else {
                    state.waiting[ticket.token] = continuation
                }
            }
        }
        switch admission {
        case .rateLimited: return Evaluator.deny(request, .rateLimited)
        case .cancelled: return pausedDenial(request) ?? lockedDenial(request) ?? Evaluator.deny(request, .cancelled)
        case .go: return await prompt(request, ticket: ticket, task: task)
        }
    }

    /// Carries out a cancel: waiters resume as cancelled, prompts are withdrawn from the helper.
    /// Nothing is remembered for them.
    private func apply(_ cancelled: PromptQueue.Cancelled, _ state: inout State, _ deferred: inout Deferred) {
        for token in cancelled.waiters {
            guard let waiter = state.waiting.removeValue(forKey: token) else { continue }
            deferred.actions.append { waiter.resume(returning: .cancelled) }
        }
        for promptID in cancelled.prompts { endPromptLocked(&state, &deferred, promptID, .cancelled, from: nil, notifyHelper: true) }
    }

    // MARK: - Prompting

    private func prompt(_ request: BrokerRequest, ticket: PromptQueue.Ticket, task: TaskRequest?) async -> Decision {
        // Decide again: while this request waited, a grant may have appeared or been revoked.
        let explicit: PolicyRule?
        if task != nil {
            // A task's approval is no rule's business; a pause meanwhile still stops it.
            if let paused = pausedDenial(request) { return paused }
            explicit = nil
        } else {
            switch evaluate(request, consumingTask: true) {
            case .decided(let decision): return decision
            case .ask(let rule): explicit = rule
            }
        }
        // No prompt on a locked screen (also one locked while this request waited its turn).
        if let locked = lockedDenial(request) { return locked }
        let choices: [String] = if task != nil {
            ["deny", "approve_task"]
        } else if request.riskClass == .control {
            ["deny", "resume"]
        } else if explicit != nil || request.riskClass == .secret {
            // An ask rule means every time; a secret is never remembered.
            ["deny", "allow_once"]
        } else {
            ["deny", "allow_once", "allow_session", "allow_1h", "allow_always"]
        }
        let promptID = RandomID.promptID()
        let base = Self.promptParams(request, promptID: promptID, choices: choices, explicit: explicit,
                                     timeout: config.promptTimeout)
        let params = task.map { Self.taskPromptParams(base, $0, now: now()) } ?? base
        // Whether this helper may have been started by this client is read before the lock; the
        // helper it was read for must still be the registered one when the prompt goes out.
        var helper = withState { state, _ in state.helper?.identity }
        var facts = self.facts(request, helper: helper, forPrompt: true)
        for _ in 0..<4 {
            let current = withState { state, _ in state.helper?.identity }
            if current?.connectionID == helper?.connectionID { break }
            helper = current
            facts = self.facts(request, helper: helper, forPrompt: true)
        }
        let blocker = Evaluator.promptBlocker(request, helper: helper, facts)

        enum Start { case started(HelperState), cancelled, noHelper(String) }
        var shown = false
        let ending: PromptSessions.Ending = await withCheckedContinuation { continuation in
            let start = withState { state, deferred -> Start in
                guard state.queue.isActive(ticket) else { return .cancelled }
                if let blocker { return .noHelper(blocker) }
                guard let helper = state.helper, helper.identity.connectionID == facts.helperConnection else {
                    return .noHelper("the prompt helper changed while the prompt was being prepared")
                }
                state.queue.showing(promptID, for: ticket)
                state.sessions.start(.init(id: promptID, token: ticket.token, helperConnection: helper.identity.connectionID))
                state.prompts[promptID] = PromptWait(continuation: continuation, channel: helper.channel)
                deferred.events.append(.promptSent(promptID: promptID, client: request.client, method: request.method))
                return .started(helper)
            }
            switch start {
            case .cancelled:
                continuation.resume(returning: .cancelled)
            case .noHelper(let why):
                continuation.resume(returning: .helperFailed(why))
            case .started(let helper):
                shown = true
                let timeout = config.promptTimeout
                let call = Task {
                    do {
                        let result = try await helper.channel.prompt(params, timeout: timeout)
                        self.endPrompt(promptID, .answer(result), from: helper.identity.connectionID)
                    } catch {
                        self.endPrompt(promptID, .helperFailed("the prompt helper failed (\(error))"),
                                       from: helper.identity.connectionID)
                    }
                }
                let sleep = config.sleep
                let timer = Task {
                    try? await sleep(timeout)
                    if !Task.isCancelled { self.endPrompt(promptID, .timeout, from: nil) }
                }
                withState { state, _ in
                    if state.prompts[promptID] != nil {
                        state.prompts[promptID]!.call = call
                        state.prompts[promptID]!.timer = timer
                    } else {
                        timer.cancel()
                    }
                }
            }
        }
        var decision = finish(request, ticket: ticket, promptID: promptID, ending: ending, choices: choices, explicit: explicit)
        decision.prompted = shown
        return decision
    }

    static func promptParams(_ request: BrokerRequest, promptID: String, choices: [String], explicit: PolicyRule?,
                             timeout: Duration) -> JSONValue {
        let timeoutSeconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        var params: JSONObject = [
            "prompt_id": .string(promptID),
            "kind": .string(request.riskClass == .control ? "resume" : "request"),
            "client": request.client.json,
            "action": ["method": .string(request.method), "class": .string(request.riskClass.rawValue)],
            "target": request.target?.json ?? .object([:]),
            "preview": JSONValue(request.preview.map { String($0.prefix(500)) }),
            "choices": JSONValue(choices),
            "timeout_s": .int(Int64(timeoutSeconds.rounded(.up))),
        ]
        if let explicit {
            params.append("rule", .string(explicit.id))
            if let reason = explicit.reason { params.append("reason", .string(reason)) }
        }
        return .object(params)
    }

    /// Ends a pending prompt once; later outcomes for the same id are ignored. An answer counts
    /// only from the helper connection the prompt was sent to.
    private func endPrompt(_ promptID: String, _ ending: PromptSessions.Ending, from connection: UInt64?) {
        withState { state, deferred in
            let notify = if case .timeout = ending { true } else { false }
            endPromptLocked(&state, &deferred, promptID, ending, from: connection, notifyHelper: notify)
        }
    }

    private func endPromptLocked(_ state: inout State, _ deferred: inout Deferred, _ promptID: String,
                                 _ ending: PromptSessions.Ending, from connection: UInt64?, notifyHelper: Bool) {
        guard let session = state.sessions.end(promptID, ending, from: connection),
              let wait = state.prompts.removeValue(forKey: promptID) else { return }
        wait.timer?.cancel()
        wait.call?.cancel()  // the daemon's channel stops waiting for an answer nobody needs
        let continuation = wait.continuation
        deferred.actions.append { continuation.resume(returning: ending) }
        if notifyHelper, state.helper?.identity.connectionID == session.helperConnection {
            let channel = wait.channel
            deferred.actions.append { Task { await channel.cancel(promptID: promptID) } }
        }
        deferred.events.append(.promptEnded(promptID: promptID, outcome: ending.label))
    }

    private func finish(_ request: BrokerRequest, ticket: PromptQueue.Ticket, promptID: String,
                        ending: PromptSessions.Ending, choices: [String], explicit: PolicyRule?) -> Decision {
        var decision: Decision
        switch ending {
        case .cancelled:
            decision = pausedDenial(request) ?? lockedDenial(request) ?? Evaluator.deny(request, .cancelled)
        case .timeout:
            decision = Evaluator.deny(request, .timeout, rule: explicit)
        case .helperFailed(let why):
            decision = Evaluator.deny(request, .noHelper, rule: explicit, detail: why)
        case .answer(let value):
            guard let object = value.objectValue, let choice = object["choice"]?.stringValue, choices.contains(choice) else {
                decision = Evaluator.deny(request, .noHelper, rule: explicit,
                                          detail: "the prompt helper's answer was not one of the offered choices (\(choices.joined(separator: ", ")))")
                break
            }
            decision = choice == "deny" ? Evaluator.deny(request, .userDenied, rule: explicit) : Evaluator.allow(request)
            decision.choice = choice
            decision.ruleID = explicit?.id
            if choice != "deny" {
                decision.grantID = remember(request, choice: choice, promptID: promptID, ticket: ticket)
            }
        }
        decision.promptID = promptID
        return decision
    }

    /// Stores the grant a prompt answer asked for, built from exactly the request shown. Nothing
    /// is stored when the request was cancelled meanwhile or the answer was allow_once.
    private func remember(_ request: BrokerRequest, choice: String, promptID: String, ticket: PromptQueue.Ticket) -> String? {
        let lifetime: GrantLifetime
        switch choice {
        case "allow_session": lifetime = .session
        case "allow_1h": lifetime = .hour
        case "allow_always": lifetime = .always
        default: return nil
        }
        let now = now()
        return withState { state, deferred -> String? in
            guard state.queue.isActive(ticket) else { return nil }
            let grant = RememberedGrant(id: RandomID.grantID(), lifetime: lifetime, scope: GrantScope(request), created: now,
                                        expires: lifetime == .hour ? now.addingTimeInterval(3600) : nil,
                                        connectionID: lifetime == .session ? request.client.connectionID : nil,
                                        promptID: promptID)
            state.grants.table.insert(grant)
            deferred.events.append(.grantCreated(grant))
            deferred.decisionsChanged = true
            if grant.isPersistent { deferred.persist = true }
            return grant.id
        }
    }

    // MARK: - Helpers and connections

    /// Registers the prompt helper. Only executables listed in `prompt_agents`, one at a time.
    public func registerHelper(_ channel: any PromptHelperChannel, notifyClients: Bool = false) throws(RPCError) {
        let identity = channel.identity
        let result: RPCError? = withState { state, deferred in
            guard identity.isIdentified else {
                return RPCError(.denied, "Denied: an unidentified process (its executable /proc/\(identity.pid)/exe could not be read) cannot register as the prompt helper.",
                                data: ["reason": .string(DenyReason.unidentified.rawValue), "class": "admin"])
            }
            guard state.policy.promptHelpers.contains(identity.exe) else {
                let allowed = state.policy.promptHelpers.isEmpty ? "none" : state.policy.promptHelpers.joined(separator: ", ")
                return RPCError(.denied, "Denied: \(identity.exe) may not register as the prompt helper; only executables listed in prompt_agents may (currently: \(allowed)).",
                                data: ["reason": "policy", "class": "admin"])
            }
            guard identity.origin != nil else {
                // Without them no rule can tell which apps it started or which client started it.
                return RPCError(.denied, "Denied: the cgroup or start time of the prompt helper (pid \(identity.pid)) could not be read, so deskgate cannot tell which processes it started; it cannot register.",
                                data: ["reason": "policy", "class": "admin"])
            }
            if let current = state.helper {
                if current.identity.connectionID == identity.connectionID { return nil }
                return RPCError(.denied, "Denied: a prompt helper is already registered (pid \(current.identity.pid), \(current.identity.exe)). Only one may be registered at a time.",
                                data: ["reason": "policy", "class": "admin"])
            }
            state.helper = HelperState(channel: channel, identity: identity, wantsClientCounts: notifyClients)
            state.agentsSent = nil
            deferred.events.append(.helperRegistered(identity))
            tellHelperLocked(&state, &deferred)
            return nil
        }
        if let result { throw result }
        logger.info("prompt helper registered", metadata: ["pid": "\(identity.pid)", "exe": "\(identity.exe)"])
    }

    private func unregisterHelperLocked(_ state: inout State, _ deferred: inout Deferred, reason: String) {
        guard let helper = state.helper else { return }
        state.helper = nil
        for promptID in state.sessions.shown(to: helper.identity.connectionID) {
            endPromptLocked(&state, &deferred, promptID, .helperFailed(reason), from: nil, notifyHelper: false)
        }
        deferred.events.append(.helperUnregistered(helper.identity))
    }

    /// A connection closed (client or helper). A helper's pending prompts all end as denials; a
    /// client's queued and prompting requests are cancelled (the helper gets `agent.cancel`) and
    /// its session grants die.
    public func connectionClosed(_ connectionID: UInt64) {
        withState { state, deferred in
            if state.helper?.identity.connectionID == connectionID {
                unregisterHelperLocked(&state, &deferred, reason: "the prompt helper disconnected")
            }
            apply(state.queue.cancel { $0.connectionID == connectionID }, &state, &deferred)
            for task in state.tasks.removeConnection(connectionID) { taskEndedLocked(&state, &deferred, task, .clientGone) }
            for grant in state.grants.table.removeConnection(connectionID) {
                deferred.events.append(.grantRevoked(grant))
                deferred.decisionsChanged = true
            }
        }
    }

    // MARK: - Pause

    /// Pulls the brake: from now on every observe, read, act and write request is denied
    /// (reason `paused`), queued and shown prompts end as such denials (the helper gets
    /// `agent.cancel`), and open event streams are told to decide again (they show nothing).
    /// Kept in the pause file so it survives a restart. Pausing while paused keeps the first
    /// pause (who, when, why). Returns the pause in force.
    @discardableResult
    public func pause(by client: ClientIdentity, reason: String?) -> PauseState {
        let now = now()
        let pause = withState { state, deferred -> PauseState in
            if let current = state.pause { return current }
            let pause = PauseState(since: now, by: client.json, reason: reason)
            state.pause = pause
            apply(state.queue.cancel { _ in true }, &state, &deferred)
            deferred.decisionsChanged = true
            deferred.events.append(.paused(pause, restored: false))
            return pause
        }
        syncPauseFile()
        return pause
    }

    /// Lifts the pause; the caller has been allowed by the gate (class `control`: a rule naming
    /// `broker.resume`, or a person). Returns the pause lifted, nil if there was none.
    @discardableResult
    public func resume(by client: ClientIdentity) -> PauseState? {
        let lifted = withState { state, deferred -> PauseState? in
            guard let pause = state.pause else { return nil }
            state.pause = nil
            deferred.decisionsChanged = true
            deferred.events.append(.resumed(by: client.json, pause: pause))
            return pause
        }
        syncPauseFile()
        return lifted
    }

    /// The session's lock state, as the screensaver reports it. While locked (and the policy's
    /// `when_locked` is pause) act and write are denied `session_locked`, prompts being shown
    /// end as such denials, and no new prompt is shown.
    public func setSessionLocked(_ locked: Bool) {
        withState { state, deferred in
            guard state.locked != locked else { return }
            state.locked = locked
            deferred.decisionsChanged = true
            deferred.events.append(.sessionLock(locked: locked))
            if locked, state.policy.whenLocked == .pause { apply(state.queue.cancel { _ in true }, &state, &deferred) }
        }
    }

    /// Whether the session is locked now.
    public var sessionLocked: Bool { withState { state, _ in state.locked } }

    /// The denial for a request that would prompt (or whose prompt ended) while the session is locked.
    func lockedDenial(_ request: BrokerRequest) -> Decision? {
        withState { state, _ in state.locked && state.policy.whenLocked == .pause }
            ? Evaluator.deny(request, .sessionLocked) : nil
    }

    /// `broker.halt`: pause, and revoke every remembered grant.
    public func halt(by client: ClientIdentity, reason: String?) -> (pause: PauseState, grantsRevoked: Int, tasksEnded: Int) {
        let pause = pause(by: client, reason: reason)
        let ended = withState { state, deferred -> Int in
            let tasks = state.tasks.removeAll()
            for task in tasks { taskEndedLocked(&state, &deferred, task, .halted) }
            return tasks.count
        }
        return (pause, revokeAll(), ended)
    }

    /// The pause in force, if any.
    public var currentPause: PauseState? { withState { state, _ in state.pause } }

    /// Writes or removes the pause file to match the state, on the grants file's queue so that
    /// a pause and a resume in quick succession leave the file as the last of them says.
    private func syncPauseFile() {
        let file = PauseFile(path: config.pauseFile)
        grantFile.queue.sync {
            let pause = state.withLock { $0.pause }
            do {
                if let pause { try file.store(pause) } else { try file.remove() }
            } catch {
                logger.error("the pause could not be kept in the state directory; it holds until the daemon stops",
                             metadata: ["error": "\(error)"])
            }
        }
    }

    /// The denial for a request whose prompt or turn ended because of a pause.
    func pausedDenial(_ request: BrokerRequest) -> Decision? {
        guard let pause = currentPause, request.riskClass.isPausable else { return nil }
        return Evaluator.deny(request, .paused, detail: Evaluator.pauseDetail(pause))
    }

    // MARK: - Grants

    /// All rules (admin and user layers) and remembered grants, each with its layer and id.
    public func listGrants() -> JSONValue {
        let now = now()
        return withState { state, _ in
            let rules = (state.policy.admin.rules + state.policy.user.rules).map(\.json)
            let grants = state.grants.table.all.filter { $0.isLive(at: now) }.map(\.json)
            let tasks = state.tasks.all.filter { $0.ended(at: now) == nil }.map { $0.json(now: now) }
            return ["rules": .array(rules), "grants": .array(grants), "tasks": .array(tasks)]
        }
    }

    /// Removes one remembered grant. Works whatever state the policy files are in; takes effect
    /// for requests already queued (they decide again when their turn comes).
    @discardableResult
    public func revoke(id: String) -> Bool {
        withState { state, deferred in
            if let task = state.tasks.remove(id) {
                taskEndedLocked(&state, &deferred, task, .revoked)
                return true
            }
            guard let grant = state.grants.table.remove(id) else { return false }
            deferred.events.append(.grantRevoked(grant))
            deferred.decisionsChanged = true
            if grant.isPersistent { deferred.persist = true }
            return true
        }
    }

    /// The kill switch: removes every remembered grant. A corrupt grants file is moved aside
    /// (`grants.json.corrupt`) and replaced by an empty one, which ends its deny-all.
    @discardableResult
    public func revokeAll() -> Int {
        withState { state, deferred in
            let (removed, corrupt) = state.grants.removeAll()
            for grant in removed { deferred.events.append(.grantRevoked(grant)) }
            deferred.decisionsChanged = true
            // Queued before the write below, so the corrupt file is kept for inspection.
            if corrupt { deferred.actions.append { [grantFile] in grantFile.moveCorruptFileAside() } }
            deferred.persist = true
            return removed.count
        }
    }

    private func schedulePersist() {
        grantFile.schedule(contents: { [self] in state.withLock { $0.grants.fileContents } },
                           done: { [self] error in state.withLock { $0.grants.writeError = error } })
    }

    /// Waits until every grant change so far is on disk.
    public func flush() async { await grantFile.flush() }

    // MARK: - Status

    /// Layers loaded or failed, helper registration, pending prompts and audit settings, for
    /// `daemon.info`.
    public var status: JSONValue {
        withState { state, _ in
            var object: JSONObject = ["policy": state.policy.status.json]
            object.append("default", .string(state.policy.defaultEffect.rawValue))
            object.append("grants", ["count": .int(Int64(state.grants.table.count)), "error": JSONValue(state.grants.fileError),
                                     "write_error": JSONValue(state.grants.writeError)])
            if let helper = state.helper {
                object.append("prompt_helper", ["registered": true, "pid": .int(Int64(helper.identity.pid)),
                                                "exe": .string(helper.identity.exe)])
            } else {
                object.append("prompt_helper", ["registered": false])
            }
            object.append("prompt_agents", JSONValue(state.policy.promptHelpers))
            object.append("pending_prompts", .int(Int64(state.sessions.count)))
            object.append("pause", PauseState.json(state.pause))
            object.append("session_locked", .bool(state.locked))
            object.append("when_locked", .string(state.policy.whenLocked.rawValue))
            object.append("tasks", .int(Int64(state.tasks.count)))
            object.append("audit", state.policy.audit.json)
            return .object(object)
        }
    }

    /// Effective `[audit]` settings (see ``AuditSettings``).
    public var auditSettings: AuditSettings { withState { state, _ in state.policy.audit } }

    /// The last reload's per-file status.
    public var policyStatus: PolicyStatus { withState { state, _ in state.policy.status } }

    /// The number of connected clients changed (the daemon counts connections).
    public func clientsChanged(total: Int) {
        withState { state, deferred in
            state.clients = total
            tellHelperLocked(&state, &deferred)
        }
    }

    /// Sends the helper the number of other clients when it changed since the last time.
    func tellHelperLocked(_ state: inout State, _ deferred: inout Deferred) {
        guard let helper = state.helper, helper.wantsClientCounts else { return }
        let agents = max(0, state.clients - 1)
        guard state.agentsSent != agents else { return }
        state.agentsSent = agents
        let channel = helper.channel
        deferred.actions.append { Task { await channel.clientsChanged(agents: agents) } }
    }

    /// Whether a prompt helper is registered.
    public var helperRegistered: Bool { withState { state, _ in state.helper != nil } }
}
