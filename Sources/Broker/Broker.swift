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
/// All state sits behind one mutex; nothing blocking happens under it. Grant files are written
/// on a private serial queue, never on the cooperative thread pool. Policy files are read by
/// ``reload()``, which the daemon calls at start-up and on SIGHUP.
public final class Broker: Sendable {
    let config: BrokerConfig
    let inspector: any ProcessInspector
    let now: @Sendable () -> Date
    let events: @Sendable (BrokerEvent) -> Void
    let logger: Logger
    let state: Mutex<State>
    /// Serial queue for file I/O (grant writes and reloads), so writes land in order.
    let io = DispatchQueue(label: "deskgate.broker.io")

    public init(config: BrokerConfig, inspector: any ProcessInspector, now: @escaping @Sendable () -> Date = { Date() },
                events: @escaping @Sendable (BrokerEvent) -> Void = { _ in }, logger: Logger) {
        self.config = config
        self.inspector = inspector
        self.now = now
        self.events = events
        self.logger = logger
        self.state = Mutex(State(promptAgents: config.defaultPromptAgents))
    }

    // MARK: - State

    struct LayerState: Sendable {
        var files: [PolicyFile] = []
        var failures: [(path: String, line: Int?, message: String)] = []
        var index = RuleIndex([])
        var rules: [PolicyRule] { index.rules }
    }

    struct HelperState: Sendable {
        var channel: any PromptHelperChannel
        var identity: ClientIdentity
    }

    struct ActiveSlot: Sendable {
        var token: UInt64
        var connectionID: UInt64
        var requestKey: String?
        var cancelled = false
        var promptID: String?
    }

    struct Waiter: Sendable {
        var token: UInt64
        var connectionID: UInt64
        var requestKey: String?
        var continuation: CheckedContinuation<Admission, Never>
    }

    struct ClientQueue: Sendable {
        var active: ActiveSlot?
        var waiters: [Waiter] = []
    }

    enum PromptOutcome: Sendable {
        case answer(JSONValue)
        case timeout
        case helperFailed(String)
        case cancelled
    }

    struct PendingPrompt: Sendable {
        var id: String
        var token: UInt64
        var clientPid: Int32
        var helper: HelperState
        var continuation: CheckedContinuation<PromptOutcome, Never>
        var timer: Task<Void, Never>?
        var call: Task<Void, Never>?
    }

    struct State: Sendable {
        var admin = LayerState()
        var user = LayerState()
        var grantsError: String?
        var grantsWriteError: String?
        var grants = GrantTable()
        var sensitive = SensitiveMatcher()
        var promptAgents: [String]
        var defaultEffect: RuleEffect = .ask
        var defaultFromAdmin = false
        var audit = AuditSettings()
        var status = PolicyStatus(files: [])
        var helper: HelperState?
        var queues: [Int32: ClientQueue] = [:]
        var waitingTotal = 0
        var prompts: [String: PendingPrompt] = [:]
        var cancelledTokens: Set<UInt64> = []
        var nextToken: UInt64 = 0
        var loaded = false
        /// Sensitive-list answers per (app name, app exe); cleared on reload.
        var sensitiveCache: [SensitiveKey: Bool] = [:]
        /// Counts changes that can change a decision (policy reloads, grants created, revoked or
        /// expired), so standing permits know when to be decided again.
        var generation: UInt64 = 0

        init(promptAgents: [String]) { self.promptAgents = promptAgents }

        mutating func isSensitive(_ target: TargetInfo?) -> Bool {
            guard let target, target.appName != nil || target.appExe != nil else { return false }
            let key = SensitiveKey(name: target.appName, exe: target.appExe)
            if let known = sensitiveCache[key] { return known }
            let answer = sensitive.isSensitive(target)
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
    /// Does blocking file I/O: call it at start-up or from the SIGHUP handler's thread.
    @discardableResult
    public func reload() -> PolicyStatus {
        io.sync { reloadOnIOQueue() }
    }

    private func reloadOnIOQueue() -> PolicyStatus {
        var statuses: [PolicyStatus.FileStatus] = []
        var collected: [BrokerEvent] = []

        func load(_ path: String, layer: PolicyLayer, into target: inout LayerState) {
            do {
                guard let bytes = try FileIO.read(path) else {
                    statuses.append(.init(path: path, layer: layer, loaded: false, rules: 0))
                    return
                }
                let file = try PolicyParser.parse(bytes, path: path, layer: layer)
                target.files.append(file)
                statuses.append(.init(path: path, layer: layer, loaded: true, sha256: file.sha256, rules: file.rules.count))
                collected.append(.policyLoaded(path: path, layer: layer, sha256: file.sha256, rules: file.rules.count))
            } catch let error as TOMLError {
                target.failures.append((path, error.line, error.message))
                statuses.append(.init(path: path, layer: layer, loaded: false, rules: 0, error: error.description))
                collected.append(.policyError(path: path, layer: layer, line: error.line, message: error.message))
            } catch {
                target.failures.append((path, nil, "\(error)"))
                statuses.append(.init(path: path, layer: layer, loaded: false, rules: 0, error: "\(error)"))
                collected.append(.policyError(path: path, layer: layer, line: nil, message: "\(error)"))
            }
        }

        var admin = LayerState()
        do {
            for path in try FileIO.tomlFiles(in: config.systemPolicyDir) ?? [] { load(path, layer: .admin, into: &admin) }
        } catch {
            admin.failures.append((config.systemPolicyDir, nil, error.description))
            statuses.append(.init(path: config.systemPolicyDir, layer: .admin, loaded: false, rules: 0, error: error.description))
            collected.append(.policyError(path: config.systemPolicyDir, layer: .admin, line: nil, message: error.description))
        }
        admin.index = RuleIndex(admin.files.flatMap(\.rules))
        var user = LayerState()
        load(config.userPolicyFile, layer: .user, into: &user)
        user.index = RuleIndex(user.files.flatMap(\.rules))

        var grants: [RememberedGrant] = []
        var grantsError: String?
        do {
            if let bytes = try FileIO.read(config.grantsFile) {
                grants = try GrantFile.decode(bytes)
            }
            statuses.append(.init(path: config.grantsFile, layer: .grants, loaded: true, rules: grants.count))
            collected.append(.grantsLoaded(path: config.grantsFile, count: grants.count))
        } catch {
            grantsError = "\(error)"
            statuses.append(.init(path: config.grantsFile, layer: .grants, loaded: false, rules: 0, error: "corrupt: \(error)"))
            collected.append(.grantsError(path: config.grantsFile, message: "\(error)"))
        }

        let status = PolicyStatus(files: statuses)
        withState { state, deferred in
            state.admin = admin
            state.user = user
            state.grantsError = grantsError
            // Persistent grants come from the file; session and once grants live on in memory.
            for grant in state.grants.all where grant.isPersistent { state.grants.remove(grant.id) }
            for grant in grants { state.grants.insert(grant) }
            _ = state.grants.pruneExpired(now: now())
            state.sensitive = SensitiveMatcher(extra: (admin.files + user.files).flatMap(\.sensitiveApps))
            state.sensitiveCache = [:]
            let adminAgents = admin.files.compactMap(\.promptAgents)
            let userAgents = user.files.compactMap(\.promptAgents)
            if !admin.failures.isEmpty {
                state.promptAgents = []  // fail closed: nobody may answer prompts for a broken admin layer
            } else if !adminAgents.isEmpty {
                state.promptAgents = canonicalAgents(adminAgents.flatMap { $0 })
            } else if !userAgents.isEmpty {
                state.promptAgents = canonicalAgents(userAgents.flatMap { $0 })
            } else {
                state.promptAgents = canonicalAgents(config.defaultPromptAgents)
            }
            let adminDeny = admin.files.contains { $0.defaultEffect == .deny }
            let userDeny = user.files.contains { $0.defaultEffect == .deny }
            state.defaultEffect = adminDeny || userDeny ? .deny : .ask
            state.defaultFromAdmin = adminDeny
            state.audit = AuditSettings.combine(admin: admin.files.map(\.audit),
                                                user: user.failures.isEmpty ? user.files.first?.audit : nil)
            state.status = status
            state.loaded = true
            deferred.decisionsChanged = true
            // A helper that is no longer listed loses its registration.
            if let helper = state.helper, !state.promptAgents.contains(helper.identity.exe) {
                unregisterHelperLocked(&state, &deferred, reason: "the prompt helper is no longer listed in prompt_agents")
            }
            deferred.events = collected
        }
        for line in status.errors { logger.error("policy file rejected; its layer denies everything", metadata: ["error": "\(line)"]) }
        return status
    }

    /// Each listed path and, when it resolves, its real path: the verified exe of a helper is
    /// always the real path (`/proc/PID/exe`), while a policy may name it through a symlink.
    private func canonicalAgents(_ paths: [String]) -> [String] {
        var result: [String] = []
        for path in paths {
            result.append(path)
            if let real = FileIO.realPath(path), real != path { result.append(real) }
        }
        return result
    }

    // MARK: - Evaluation

    enum Evaluation: Sendable {
        case decided(Decision)
        /// A person must decide. `explicit`: the ask rule that demands it (no remembering).
        case ask(explicit: PolicyRule?)
    }

    func deny(_ request: BrokerRequest, _ reason: DenyReason, rule: PolicyRule? = nil, ruleID: String? = nil,
              detail: String? = nil) -> Decision {
        var decision = Decision(effect: .deny, reason: reason, ruleID: rule?.id ?? ruleID, request: request,
                                ruleReason: rule?.reason, detail: detail)
        decision.validUntil = rule?.expires
        return decision
    }

    func allow(_ request: BrokerRequest, rule: PolicyRule? = nil, grant: RememberedGrant? = nil) -> Decision {
        var decision = Decision(effect: .allow, ruleID: rule?.id, grantID: grant?.id, request: request)
        decision.validUntil = rule?.expires ?? grant?.expires
        return decision
    }

    /// The hard denies no rule or prompt can lift.
    func hardDeny(_ request: BrokerRequest, _ state: inout State) -> Decision? {
        if !request.client.isIdentified { return deny(request, .unidentified) }
        if state.isSensitive(request.target) {
            let app = request.target?.appName ?? request.target?.appExe ?? "this app"
            return deny(request, .hardDeny,
                        detail: "'\(JSONWriter.escapedForMessage(app))' is a sensitive app (password manager, credential or polkit prompt, keyring, lock screen or screensaver), which deskgate never touches")
        }
        if request.riskClass == .read || request.method == TextRead.name, request.target?.role == "password text" {
            return deny(request, .hardDeny, detail: "the text of password fields is never read")
        }
        if let helper = state.helper, let appPid = request.target?.appPid {
            // Its own windows, and any app it may have started (a zenity dialog, also one it
            // detached with setsid): an agent must never click "Allow" through AT-SPI.
            if appPid == helper.identity.pid {
                return deny(request, .hardDeny, detail: "the prompt helper's windows cannot be accessed")
            }
            if let how = Provenance.mayHaveStarted((appPid, inspector.origin(of: appPid)), by: (helper.identity.pid, helper.identity.origin),
                                                   inspector: inspector) {
                return deny(request, .hardDeny,
                            detail: "the app may have been started by the prompt helper (\(how.explanation(child: "it", parent: "the helper"))), and the helper's windows and those of processes it started cannot be accessed")
            }
        }
        return nil
    }

    /// Decides from rules and grants alone. With `consume`, a matching once-grant is used up
    /// (under the lock, so of concurrent requests exactly one gets it).
    /// `grantMethods`: other methods whose remembered grants (with this request's client and
    /// target) also allow it (standing questions, see ``StandingQuestion``).
    func evaluate(_ request: BrokerRequest, _ state: inout State, consume: Bool, now: Date,
                  grantMethods: Set<String> = []) -> Evaluation {
        if let denied = hardDeny(request, &state) { return .decided(denied) }
        if !state.loaded {
            return .decided(deny(request, .policyError, detail: "the policy has not been loaded yet"))
        }
        if let failure = state.admin.failures.first {
            return .decided(deny(request, .policyError, detail: "the administrator's policy \(failure.path) failed to load (\(failure.line.map { "line \($0): " } ?? "")\(failure.message))"))
        }
        if let failure = state.user.failures.first {
            return .decided(deny(request, .policyError, detail: "the user policy \(failure.path) failed to load (\(failure.line.map { "line \($0): " } ?? "")\(failure.message))"))
        }
        if let error = state.grantsError {
            return .decided(deny(request, .policyError, detail: "the remembered-grants file \(config.grantsFile) is corrupt (\(error)); 'deskgate grants revoke-all' resets it"))
        }

        var matches = RuleMatches()
        state.admin.index.collect(request, now: now, into: &matches)
        state.user.index.collect(request, now: now, into: &matches)
        if let rule = matches.adminDeny { return .decided(deny(request, .lockedDown, rule: rule)) }
        if let rule = matches.userDeny { return .decided(deny(request, .policy, rule: rule)) }
        if let rule = matches.ask { return .ask(explicit: rule) }
        if let rule = matches.allow { return .decided(allow(request, rule: rule)) }

        if let grant = state.grants.covering(request, now: now) {
            if grant.lifetime == .once, consume { state.grants.remove(grant.id) }
            return .decided(allow(request, grant: grant))
        }
        for method in grantMethods.sorted() where method != request.method {
            var alternative = request
            alternative.method = method
            if let grant = state.grants.covering(alternative, now: now), grant.lifetime != .once {
                return .decided(allow(request, grant: grant))
            }
        }
        if state.defaultEffect == .deny {
            return .decided(deny(request, state.defaultFromAdmin ? .lockedDown : .policy))
        }
        return .ask(explicit: nil)
    }

    /// Why no prompt can be shown for this client right now, if so.
    func promptBlocker(_ request: BrokerRequest, _ state: State) -> String? {
        guard let helper = state.helper else { return "no prompt helper is registered" }
        let helperPid = helper.identity.pid
        if helperPid == request.client.pid || helper.identity.connectionID == request.client.connectionID {
            return "the prompt helper cannot approve its own requests"
        }
        if let how = Provenance.mayHaveStarted((helperPid, helper.identity.origin), by: (request.client.pid, request.client.origin),
                                               inspector: inspector) {
            return "the registered prompt helper may have been started by the requesting client itself (\(how.explanation(child: "the helper", parent: "the client"))), so it cannot approve that client's requests; run the helper in a cgroup of its own (deskgate-prompt.service, or systemd-run --user --scope)"
        }
        return nil
    }

    // MARK: - Public decisions

    /// What would happen, without prompting and without consuming anything (`broker.check`).
    /// Returns ask when a prompt would be shown.
    public func check(_ request: BrokerRequest) -> Decision {
        let now = now()
        return withState { state, _ in
            switch evaluate(request, &state, consume: false, now: now) {
            case .decided(let decision):
                return decision
            case .ask(let explicit):
                if !request.interactive { return deny(request, .wouldPrompt, rule: explicit) }
                if let blocker = promptBlocker(request, state) { return deny(request, .noAgent, rule: explicit, detail: blocker) }
                return Decision(effect: .ask, ruleID: explicit?.id, request: request, ruleReason: explicit?.reason)
            }
        }
    }

    /// Decides a request, prompting a person when the policy asks for it. Never throws: a
    /// denial is a ``Decision`` whose ``Decision/rpcError`` the daemon sends. If the calling task
    /// is cancelled, a pending prompt is withdrawn (`agent.cancel`) and nothing is remembered.
    public func decide(_ request: BrokerRequest) async -> Decision {
        let now = now()
        let explicit: PolicyRule?
        switch withState({ state, _ in evaluate(request, &state, consume: true, now: now) }) {
        case .decided(let decision): return decision
        case .ask(let rule): explicit = rule
        }
        if !request.interactive { return deny(request, .wouldPrompt, rule: explicit) }
        if let blocker = withState({ state, _ in promptBlocker(request, state) }) {
            return deny(request, .noAgent, rule: explicit, detail: blocker)
        }

        let token = withState { state, _ -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        let pid = request.client.pid
        let decision = await withTaskCancellationHandler {
            await self.queuedPrompt(request, token: token)
        } onCancel: {
            self.cancel(token: token)
        }
        withState { state, _ in state.cancelledTokens.remove(token) }
        release(token: token, pid: pid)
        return decision
    }

    // MARK: - Queue

    enum Admission: Sendable { case go, rateLimited, cancelled }

    private func queuedPrompt(_ request: BrokerRequest, token: UInt64) async -> Decision {
        let pid = request.client.pid
        // Admission and joining the queue happen in one critical section: a bound checked in
        // one step and taken in another lets a burst of concurrent requests all slip past it.
        let admission = await withCheckedContinuation { (continuation: CheckedContinuation<Admission, Never>) in
            withState { state, deferred in
                let verdict: Admission?
                if state.cancelledTokens.contains(token) {
                    verdict = .cancelled
                } else if state.queues[pid]?.active == nil {
                    state.queues[pid, default: ClientQueue()].active = ActiveSlot(
                        token: token, connectionID: request.client.connectionID, requestKey: request.requestKey)
                    verdict = .go
                } else if state.queues[pid]!.waiters.count >= config.maxQueuedPerClient
                            || state.waitingTotal >= config.maxQueuedTotal {
                    verdict = .rateLimited
                } else {
                    verdict = nil
                    state.queues[pid]!.waiters.append(Waiter(
                        token: token, connectionID: request.client.connectionID, requestKey: request.requestKey,
                        continuation: continuation))
                    state.waitingTotal += 1
                }
                if let verdict { deferred.actions.append { continuation.resume(returning: verdict) } }
            }
        }
        switch admission {
        case .rateLimited: return deny(request, .rateLimited)
        case .cancelled: return deny(request, .cancelled)
        case .go: break
        }
        return await prompt(request, token: token)
    }

    /// Frees the client's slot and hands it to the next waiter, which then re-evaluates (so
    /// grants created or revoked meanwhile take effect).
    private func release(token: UInt64, pid: Int32) {
        withState { state, deferred in
            guard var queue = state.queues[pid] else { return }
            if queue.active?.token == token {
                queue.active = nil
                if !queue.waiters.isEmpty {
                    let next = queue.waiters.removeFirst()
                    state.waitingTotal -= 1
                    queue.active = ActiveSlot(token: next.token, connectionID: next.connectionID, requestKey: next.requestKey)
                    deferred.actions.append { next.continuation.resume(returning: .go) }
                }
            }
            state.queues[pid] = queue.active == nil && queue.waiters.isEmpty ? nil : queue
        }
    }

    /// Cancels one queued or prompting request: a waiter leaves the queue, an active prompt is
    /// withdrawn from the helper. Nothing is remembered for it.
    private func cancel(token: UInt64) {
        withState { state, deferred in cancelLocked(&state, &deferred, where: { $0 == token }) }
    }

    private func cancelLocked(_ state: inout State, _ deferred: inout Deferred, where matches: (UInt64) -> Bool,
                              connection: UInt64? = nil, requestKey: String? = nil) {
        var found = false
        for (pid, var queue) in state.queues {
            if var active = queue.active, matches(active.token) {
                found = true
                active.cancelled = true
                queue.active = active
                if let promptID = active.promptID { resolveLocked(&state, &deferred, promptID, .cancelled, notifyHelper: true) }
            }
            let doomed = queue.waiters.filter { matches($0.token) }
            if !doomed.isEmpty {
                found = true
                queue.waiters.removeAll { matches($0.token) }
                state.waitingTotal -= doomed.count
                for waiter in doomed { deferred.actions.append { waiter.continuation.resume(returning: .cancelled) } }
            }
            state.queues[pid] = queue
        }
        _ = found
    }

    // MARK: - Prompting

    private func prompt(_ request: BrokerRequest, token: UInt64) async -> Decision {
        // Re-evaluate: while this request waited, a grant may have appeared or been revoked.
        let now = now()
        let evaluation = withState { state, _ in evaluate(request, &state, consume: true, now: now) }
        let explicit: PolicyRule?
        switch evaluation {
        case .decided(let decision): return decision
        case .ask(let rule): explicit = rule
        }
        let choices: [String] = explicit != nil || request.client.exe.isEmpty
            ? ["deny", "allow_once"]
            : ["deny", "allow_once", "allow_session", "allow_1h", "allow_always"]
        let promptID = RandomID.promptID()
        let timeout = config.promptTimeout
        let timeoutSeconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        var params: JSONObject = [
            "prompt_id": .string(promptID),
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
        let paramsValue = JSONValue.object(params)
        let pid = request.client.pid

        enum Start { case started(HelperState), cancelled, noHelper(String) }
        var shown = false
        let outcome: PromptOutcome = await withCheckedContinuation { continuation in
            let start = withState { state, deferred -> Start in
                guard let active = state.queues[pid]?.active, active.token == token, !active.cancelled else { return .cancelled }
                if let blocker = promptBlocker(request, state) { return .noHelper(blocker) }
                let helper = state.helper!
                state.queues[pid]!.active!.promptID = promptID
                state.prompts[promptID] = PendingPrompt(id: promptID, token: token, clientPid: pid, helper: helper,
                                                        continuation: continuation)
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
                let call = Task {
                    do {
                        let result = try await helper.channel.prompt(paramsValue, timeout: timeout)
                        self.resolve(promptID, .answer(result), fromConnection: helper.identity.connectionID)
                    } catch {
                        self.resolve(promptID, .helperFailed("the prompt helper failed (\(error))"),
                                     fromConnection: helper.identity.connectionID)
                    }
                }
                let sleep = config.sleep
                let timer = Task {
                    try? await sleep(timeout)
                    if !Task.isCancelled { self.resolve(promptID, .timeout, fromConnection: nil) }
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
        var decision = finish(request, promptID: promptID, token: token, outcome: outcome, choices: choices, explicit: explicit)
        decision.prompted = shown
        return decision
    }

    /// Ends a pending prompt once; later outcomes for the same id are ignored. An answer counts
    /// only from the helper connection the prompt was sent to.
    private func resolve(_ promptID: String, _ outcome: PromptOutcome, fromConnection: UInt64?) {
        withState { state, deferred in
            guard let pending = state.prompts[promptID] else { return }
            if case .answer = outcome, pending.helper.identity.connectionID != fromConnection { return }
            resolveLocked(&state, &deferred, promptID, outcome, notifyHelper: { if case .timeout = outcome { true } else { false } }())
        }
    }

    private func resolveLocked(_ state: inout State, _ deferred: inout Deferred, _ promptID: String, _ outcome: PromptOutcome,
                               notifyHelper: Bool) {
        guard let pending = state.prompts.removeValue(forKey: promptID) else { return }
        pending.timer?.cancel()
        pending.call?.cancel()  // the daemon's channel stops waiting for an answer nobody needs
        let continuation = pending.continuation
        deferred.actions.append { continuation.resume(returning: outcome) }
        if notifyHelper, state.helper?.identity.connectionID == pending.helper.identity.connectionID {
            let channel = pending.helper.channel
            deferred.actions.append { Task { await channel.cancel(promptID: promptID) } }
        }
        let label: String
        switch outcome {
        case .answer(let value): label = value["choice"]?.stringValue.map { "answered \($0)" } ?? "malformed answer"
        case .timeout: label = "timeout"
        case .helperFailed: label = "helper failed"
        case .cancelled: label = "cancelled"
        }
        deferred.events.append(.promptEnded(promptID: promptID, outcome: label))
    }

    private func finish(_ request: BrokerRequest, promptID: String, token: UInt64, outcome: PromptOutcome, choices: [String],
                        explicit: PolicyRule?) -> Decision {
        var decision: Decision
        switch outcome {
        case .cancelled:
            decision = deny(request, .cancelled)
        case .timeout:
            decision = deny(request, .timeout, rule: explicit)
        case .helperFailed(let why):
            decision = deny(request, .noAgent, rule: explicit, detail: why)
        case .answer(let value):
            guard let object = value.objectValue, let choice = object["choice"]?.stringValue, choices.contains(choice) else {
                decision = deny(request, .noAgent, rule: explicit,
                                detail: "the prompt helper's answer was not one of the offered choices (\(choices.joined(separator: ", ")))")
                break
            }
            decision = choice == "deny" ? deny(request, .userDenied, rule: explicit) : allow(request)
            decision.choice = choice
            decision.ruleID = explicit?.id
            if choice != "deny" {
                decision.grantID = remember(request, choice: choice, promptID: promptID, token: token)
            }
        }
        decision.promptID = promptID
        return decision
    }

    /// Stores the grant a prompt answer asked for, built from exactly the request shown. Nothing
    /// is stored when the request was cancelled meanwhile or the answer was allow_once.
    private func remember(_ request: BrokerRequest, choice: String, promptID: String, token: UInt64) -> String? {
        let lifetime: GrantLifetime
        switch choice {
        case "allow_session": lifetime = .session
        case "allow_1h": lifetime = .hour
        case "allow_always": lifetime = .always
        default: return nil
        }
        let now = now()
        return withState { state, deferred -> String? in
            guard let active = state.queues[request.client.pid]?.active, active.token == token, !active.cancelled else { return nil }
            let grant = RememberedGrant(id: RandomID.grantID(), lifetime: lifetime, scope: GrantScope(request), created: now,
                                        expires: lifetime == .hour ? now.addingTimeInterval(3600) : nil,
                                        connectionID: lifetime == .session ? request.client.connectionID : nil,
                                        promptID: promptID)
            state.grants.insert(grant)
            deferred.events.append(.grantCreated(grant))
            deferred.decisionsChanged = true
            if grant.isPersistent { deferred.persist = true }
            return grant.id
        }
    }

    // MARK: - Helpers and connections

    /// Registers the prompt helper. Only executables listed in `prompt_agents`, one at a time.
    public func registerHelper(_ channel: any PromptHelperChannel) throws(RPCError) {
        let identity = channel.identity
        let result: RPCError? = withState { state, deferred in
            guard identity.isIdentified else {
                return RPCError(.denied, "Denied: an unidentified process (its executable /proc/\(identity.pid)/exe could not be read) cannot register as the prompt helper.",
                                data: ["reason": .string(DenyReason.unidentified.rawValue), "class": "admin"])
            }
            guard state.promptAgents.contains(identity.exe) else {
                let allowed = state.promptAgents.isEmpty ? "none" : state.promptAgents.joined(separator: ", ")
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
            state.helper = HelperState(channel: channel, identity: identity)
            deferred.events.append(.helperRegistered(identity))
            return nil
        }
        if let result { throw result }
        logger.info("prompt helper registered", metadata: ["pid": "\(identity.pid)", "exe": "\(identity.exe)"])
    }

    private func unregisterHelperLocked(_ state: inout State, _ deferred: inout Deferred, reason: String) {
        guard let helper = state.helper else { return }
        state.helper = nil
        for (id, pending) in state.prompts where pending.helper.identity.connectionID == helper.identity.connectionID {
            resolveLocked(&state, &deferred, id, .helperFailed(reason), notifyHelper: false)
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
            cancelConnectionLocked(&state, &deferred, connectionID: connectionID, requestKey: nil)
            for grant in state.grants.removeConnection(connectionID) {
                deferred.events.append(.grantRevoked(grant))
                deferred.decisionsChanged = true
            }
        }
    }

    /// `rpc.cancel` for one request of a connection: withdraws its prompt or queue place.
    public func cancelPrompt(connectionID: UInt64, requestKey: String) {
        withState { state, deferred in cancelConnectionLocked(&state, &deferred, connectionID: connectionID, requestKey: requestKey) }
    }

    private func cancelConnectionLocked(_ state: inout State, _ deferred: inout Deferred, connectionID: UInt64, requestKey: String?) {
        var tokens: Set<UInt64> = []
        for queue in state.queues.values {
            if let active = queue.active, active.connectionID == connectionID, requestKey == nil || active.requestKey == requestKey {
                tokens.insert(active.token)
            }
            for waiter in queue.waiters where waiter.connectionID == connectionID && (requestKey == nil || waiter.requestKey == requestKey) {
                tokens.insert(waiter.token)
            }
        }
        guard !tokens.isEmpty else { return }
        cancelLocked(&state, &deferred, where: { tokens.contains($0) })
    }

    // MARK: - Grants

    /// All rules (admin and user layers) and remembered grants, each with its layer and id.
    public func listGrants() -> JSONValue {
        let now = now()
        return withState { state, _ in
            let rules = (state.admin.rules + state.user.rules).map(\.json)
            let grants = state.grants.all.filter { $0.isLive(at: now) }.map(\.json)
            return ["rules": .array(rules), "grants": .array(grants)]
        }
    }

    /// Removes one remembered grant. Works whatever state the policy files are in; takes effect
    /// for requests already queued (they re-evaluate when their turn comes).
    @discardableResult
    public func revoke(id: String) -> Bool {
        withState { state, deferred in
            guard let grant = state.grants.remove(id) else { return false }
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
            let removed = state.grants.removeAll()
            for grant in removed { deferred.events.append(.grantRevoked(grant)) }
            deferred.decisionsChanged = true
            if state.grantsError != nil {
                // Keep the corrupt file for inspection; the rename is queued before the write below.
                let path = config.grantsFile
                let logger = logger
                deferred.actions.append { [io] in
                    io.async {
                        if let aside = FileIO.moveAside(path, suffix: "corrupt") {
                            logger.warning("corrupt grants file moved aside", metadata: ["path": "\(aside)"])
                        }
                    }
                }
                state.grantsError = nil
            }
            deferred.persist = true
            return removed.count
        }
    }

    private func schedulePersist() {
        io.async { self.persistOnIOQueue() }
    }

    private func persistOnIOQueue() {
        // Reads the newest state, so of several queued writes the last one wins.
        let snapshot: [RememberedGrant]? = state.withLock { state in
            state.grantsError == nil ? state.grants.all.filter(\.isPersistent) : nil
        }
        guard let snapshot else { return }
        do {
            try FileIO.writeAtomically(GrantFile.encode(snapshot), to: config.grantsFile)
            state.withLock { $0.grantsWriteError = nil }
        } catch {
            logger.error("cannot write the grants file", metadata: ["error": "\(error)"])
            state.withLock { $0.grantsWriteError = error.description }
        }
    }

    /// Waits until every grant change so far is on disk.
    public func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            io.async { continuation.resume() }
        }
    }

    // MARK: - Status

    /// Layers loaded or failed, helper registration, pending prompts and audit settings, for
    /// `daemon.info`.
    public var status: JSONValue {
        withState { state, _ in
            var object: JSONObject = ["policy": state.status.json]
            object.append("default", .string(state.defaultEffect.rawValue))
            object.append("grants", ["count": .int(Int64(state.grants.count)), "error": JSONValue(state.grantsError),
                                     "write_error": JSONValue(state.grantsWriteError)])
            if let helper = state.helper {
                object.append("prompt_helper", ["registered": true, "pid": .int(Int64(helper.identity.pid)),
                                                "exe": .string(helper.identity.exe)])
            } else {
                object.append("prompt_helper", ["registered": false])
            }
            object.append("prompt_agents", JSONValue(state.promptAgents))
            object.append("pending_prompts", .int(Int64(state.prompts.count)))
            object.append("audit", state.audit.json)
            return .object(object)
        }
    }

    /// Effective `[audit]` settings (see ``AuditSettings``).
    public var auditSettings: AuditSettings { withState { state, _ in state.audit } }

    /// The last reload's per-file status.
    public var policyStatus: PolicyStatus { withState { state, _ in state.status } }

    /// Whether a prompt helper is registered.
    public var helperRegistered: Bool { withState { state, _ in state.helper != nil } }
}
