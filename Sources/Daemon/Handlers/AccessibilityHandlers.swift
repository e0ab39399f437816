public import ATSPI
import Broker
import DeskgateAPI
public import JSONRPC
import Logging
import SecretService

/// The accessibility operations the handlers use: ``AccessibilityService`` on a real bus, or a
/// fake in tests of the request path (dispatcher, gate, handlers) without a desktop.
public protocol Accessibility: Sendable {
    func resolveApp(_ idOrName: String) async throws(AccessibilityError) -> ResolvedTarget
    func resolveElement(ref: String) async throws(AccessibilityError) -> ResolvedTarget
    func resolveElement(ref: String, in app: ResolvedTarget) async throws(AccessibilityError) -> ResolvedTarget
    func resolveField(app: String, field: String, passwordOnly: Bool) async throws(AccessibilityError) -> ResolvedTarget
    func listApps(where include: @Sendable (AppTarget) -> Bool) async throws(AccessibilityError) -> [AppInfo]
    func snapshot(_ target: ResolvedTarget, options: SnapshotOptions, content: ContentDecider?) async throws(AccessibilityError)
        -> SnapshotResult
    func find(_ target: ResolvedTarget, role: String?, name: String?, nameContains: String?, states: [String],
              limit: Int) async throws(AccessibilityError) -> FoundElements
    func details(_ target: ResolvedTarget, content: Bool) async throws(AccessibilityError) -> ElementNode
    func readText(_ target: ResolvedTarget) async throws(AccessibilityError) -> String
    func activate(_ target: ResolvedTarget, action: String?) async throws(AccessibilityError) -> ActivateResult
    func focus(_ target: ResolvedTarget) async throws(AccessibilityError) -> FocusResult
    func setText(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult
    func setPassword(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult
    func setValue(_ target: ResolvedTarget, value: Double) async throws(AccessibilityError) -> SetValueResult
    func select(_ target: ResolvedTarget, choice: OptionChoice) async throws(AccessibilityError) -> SelectResult
    func scrollIntoView(_ target: ResolvedTarget) async throws(AccessibilityError) -> ScrollResult
    func insertText(_ target: ResolvedTarget, value: String, at offset: Int?) async throws(AccessibilityError) -> SetTextResult
    func waitFor(_ target: ResolvedTarget, query: ElementQuery, gone: Bool, timeout: Duration) async throws(AccessibilityError)
        -> WaitResult
    func navigate(_ target: ResolvedTarget, url: String) async throws(AccessibilityError) -> NavigateResult
    func diagnose(where include: @Sendable (AppTarget) -> Bool) async -> AccessibilityDiagnosis
    func subscribe(_ kinds: Set<AccessibilityEvent.Kind>, handler: @escaping @Sendable (AccessibilityEvent) -> Void)
        async throws(AccessibilityError) -> SubscriptionID
    func unsubscribe(_ id: SubscriptionID) async
}

extension AccessibilityService: Accessibility {}

extension Accessibility {
    func resolveField(app: String, field: String) async throws(AccessibilityError) -> ResolvedTarget {
        try await resolveField(app: app, field: field, passwordOnly: false)
    }
}

/// Where the handlers get their ``Accessibility`` from.
public protocol AccessibilitySource: Sendable {
    func get() async throws -> any Accessibility
    /// `{connected, error?}` for `daemon.info`.
    var status: JSONValue { get async }
    func shutdown() async
}

/// Connects to the accessibility bus on first need and again after a failure, so a daemon
/// started before the desktop session's bus still serves AT-SPI once the bus exists.
actor AccessibilityProvider: AccessibilitySource {
    private let config: AccessibilityConfig
    private let logger: Logger
    private var service: AccessibilityService?
    private var lastFailure: (error: AccessibilityError, at: ContinuousClock.Instant)?
    private var connecting: Task<AccessibilityService, any Error>?

    init(config: AccessibilityConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// The connected service, or ``AccessibilityError/busUnavailable(_:)`` while the bus is unavailable.
    func get() async throws -> any Accessibility {
        if let service { return service }
        if let lastFailure, ContinuousClock.now - lastFailure.at < .seconds(1) { throw lastFailure.error }
        if connecting == nil {
            let config = self.config
            let logger = self.logger
            connecting = Task { try await AccessibilityService.start(config: config, logger: logger) }
        }
        do {
            let started = try await connecting!.value
            service = started
            connecting = nil
            lastFailure = nil
            return started
        } catch {
            connecting = nil
            let failure = (error as? AccessibilityError) ?? .busUnavailable("\(error)")
            lastFailure = (failure, ContinuousClock.now)
            throw failure
        }
    }

    var status: JSONValue {
        if service != nil { return ["connected": true] }
        if let lastFailure { return ["connected": false, "error": .string(lastFailure.error.description)] }
        return ["connected": false]
    }

    func shutdown() async {
        await service?.shutdown()
        service = nil
    }
}

/// The AT-SPI methods: each resolves its target once, live; the gate decides on that target;
/// the handler acts on exactly it (the service re-checks it right before acting).
enum AccessibilityHandlers {
    static func register(into table: inout MethodTable, source: any AccessibilitySource, broker: Broker?,
                         streams: EventStreams) {
        let decisions = StandingDecisions(broker: broker)

        table.register(AppsList.self) { _, context in
            let client = context.client
            let apps = try await source.get().listApps { app in
                decisions.mayObserve(client, method: AppsList.name, app: app)
            }
            return apps.map { app in
                AppsList.Entry(id: app.id, name: app.name, pid: app.pid, exe: app.exe, toolkit: app.toolkit,
                               windows: app.windows.map { .init(ref: $0.ref, name: $0.name, role: $0.role, active: $0.active) },
                               responding: app.responding)
            }
        }

        table.register(TreeSnapshot.self, target: { params, context in
            let app = try await resolveApp(params.app, source: source, decisions: decisions, client: context.client)
            guard let root = params.root else { return app }
            return try await source.get().resolveElement(ref: root, in: app)
        }, handler: { params, context, target in
            let options = SnapshotOptions(maxDepth: params.maxDepth, maxNodes: params.maxNodes,
                                          filter: SnapshotFilter(rawValue: params.filter.rawValue) ?? .all,
                                          format: SnapshotFormat(rawValue: params.format.rawValue) ?? .json,
                                          include: try SnapshotIncludes(names: params.include))
            let result = try await source.get().snapshot(target, options: options,
                                                         content: decisions.contentDecider(context.client, app: target.app))
            // Thousands of nodes: written straight into the reply, no JSONValue tree.
            var writer = JSONWriter(capacity: result.estimatedSize)
            result.write(into: &writer)
            return EncodedJSON(writer)
        })

        table.register(ElementsFind.self, target: { params, context in
            try await resolveApp(params.app, source: source, decisions: decisions, client: context.client)
        }, handler: { params, _, target in
            let found = try await source.get().find(target, role: params.role, name: params.name,
                                                    nameContains: params.nameContains, states: params.states,
                                                    limit: params.limit)
            return ["app": .string(found.app), "nodes": .array(found.nodes.map(\.json)), "truncated": .bool(found.truncated),
                    "method": .string(found.method)]
        })

        let element: @Sendable (RefParams, RequestContext) async throws -> ResolvedTarget = { params, _ in
            try await source.get().resolveElement(ref: params.ref)
        }
        table.register(ElementGet.self, target: element) { _, context, target in
            // Content (text, value) only where the caller may read this element: decided as
            // text.read would be, without asking.
            let content = decisions.mayRead(context.client, target: target)
            return try await source.get().details(target, content: content).json
        }
        table.register(TextRead.self, target: element) { _, _, target in
            TextRead.Result(text: try await source.get().readText(target))
        }
        table.register(ElementActivate.self, target: { params, _ in
            try await source.get().resolveElement(ref: params.ref)
        }, handler: { params, _, target in
            let done = try await source.get().activate(target, action: params.action)
            return ElementActivate.Result(ok: done.performed, action: done.action, states: done.states, settled: done.settled)
        })
        table.register(ElementFocus.self, target: element) { _, _, target in
            let done = try await source.get().focus(target)
            return ElementFocus.Result(ok: done.accepted, states: done.states, settled: done.settled)
        }
        table.register(ElementSelect.self, target: { params, _ in
            try await source.get().resolveElement(ref: params.ref)
        }, handler: { params, _, target in
            let choice: OptionChoice = params.optionName.map { .name($0) } ?? .index(params.index ?? 0)
            let done = try await source.get().select(target, choice: choice)
            return ElementSelect.Result(ok: done.selected, option: done.option, index: done.index, method: done.method,
                                        settled: done.settled)
        })
        table.register(ElementScrollIntoView.self, target: element) { _, _, target in
            let done = try await source.get().scrollIntoView(target)
            return ElementScrollIntoView.Result(ok: done.accepted, inView: done.inView, states: done.states)
        }
        table.register(TextInsert.self, target: { params, _ in
            try await source.get().resolveElement(ref: params.ref)
        }, handler: { params, _, target in
            let done = try await source.get().insertText(target, value: params.value, at: params.at)
            return TextSet.Result(ok: done.accepted, matches: done.matches, length: done.length)
        })
        table.register(BrowserNavigate.self, target: { params, context in
            try await resolveApp(params.app, source: source, decisions: decisions, client: context.client)
        }, handler: { params, _, target in
            let done = try await source.get().navigate(target, url: params.url)
            return ["ok": true, "url": .string(done.url), "origin": .string(done.origin), "browser": .string(done.browser)]
        })
        table.register(TextSet.self, target: { params, _ in
            try await source.get().resolveElement(ref: params.ref)
        }, handler: { params, _, target in
            let done = try await source.get().setText(target, value: params.value)
            return TextSet.Result(ok: done.accepted, matches: done.matches, length: done.length)
        })
        table.register(ValueSet.self, target: { params, _ in
            try await source.get().resolveElement(ref: params.ref)
        }, handler: { params, _, target in
            let done = try await source.get().setValue(target, value: params.value)
            return ValueSet.Result(ok: done.accepted, value: done.value, settled: done.settled)
        })
        table.register(FieldFill.self, target: { params, context in
            do {
                return try await source.get().resolveField(app: params.app, field: params.field)
            } catch AccessibilityError.ambiguousField(let field, let candidates) {
                // The candidates describe the app's fields: only for a caller that may observe it.
                let app = try await source.get().resolveApp(params.app)
                let look = decisions.observe(context.client, method: ElementsFind.name, app: app.app)
                guard look.effect == .allow else {
                    throw look.rpcError ?? RPCError(.denied, "Denied", data: ["reason": "policy", "class": "observe"])
                }
                throw AccessibilityError.ambiguousField(field, candidates: candidates)
            }
        }, handler: { params, _, target in
            let done = try await source.get().setText(target, value: params.value)
            return TextSet.Result(ok: done.accepted, matches: done.matches, length: done.length, ref: target.element?.ref)
        })

        // The target is the password field and the keyring item, both found live: the broker
        // decides on the item's label as on the field. The secret is read only after the
        // decision, typed into the field, and dropped; only its length reaches the audit.
        let keyring = SecretServiceClient()
        table.register(FieldFillSecret.self, target: { params, _ in
            var target = try await source.get().resolveField(app: params.app, field: params.field, passwordOnly: true)
            let query: SecretQuery = switch params.item {
            case .label(let label): .label(label)
            case .attributes(let pairs): .attributes(pairs)
            }
            let item = try await keyring.find(query)
            target.secretItem = SecretItemTarget(label: item.label, path: item.path)
            return target
        }, handler: { _, context, target in
            guard let item = target.secretItem else { throw RPCError.internalError("field.fill_secret ran without its item") }
            let secret = try await keyring.read(SecretItem(label: item.label, path: item.path))
            context.outcomeNotes.add("secret_length", .int(Int64(secret.length)))
            let done = try await secret.withText { value in try await source.get().setPassword(target, value: value) }
            return FieldFillSecret.Result(ref: target.element?.ref, ok: done.accepted, matches: done.matches, secretItem: item.label)
        })

        table.register(ElementsWait.self, target: { params, context in
            try await resolveApp(params.app, source: source, decisions: decisions, client: context.client)
        }, handler: { params, _, target in
            let query = ElementQuery(role: params.role, name: params.name, nameContains: params.nameContains, states: params.states)
            let done = try await source.get().waitFor(target, query: query, gone: params.gone,
                                                      timeout: .milliseconds(params.timeoutMs))
            var result: JSONObject = ["found": .bool(done.found)]
            if let node = done.node { result.append("node", node.json) }
            result.append("waited_ms", .int(Int64(done.waitedMs)))
            result.append("queries", .int(Int64(done.queries)))
            return .object(result)
        })

        table.register(EventsSubscribe.self) { params, context in
            let kinds = Set(params.events.compactMap(AccessibilityEvent.Kind.init(rawValue:)))
            try await streams.open(source.get(), session: context.session, client: context.client, kinds: kinds)
            return ["events": JSONValue(params.events.sorted())]
        }
    }

    /// Resolves an app by id or name. When several apps share the name, the candidates named in
    /// the error are only those the caller may observe.
    static func resolveApp(_ idOrName: String, source: any AccessibilitySource, decisions: StandingDecisions,
                           client: ClientIdentity) async throws -> ResolvedTarget {
        do {
            return try await source.get().resolveApp(idOrName)
        } catch AccessibilityError.ambiguousApp(let name, let candidates) {
            throw AccessibilityError.ambiguousApp(name, candidates: candidates.filter { candidate in
                decisions.mayObserve(client, method: AppsList.name,
                                     app: AppTarget(id: candidate.id, name: candidate.name, pid: candidate.pid,
                                                    exe: candidate.exe, startTime: nil))
            })
        }
    }
}

/// Decisions made without prompting, from rules and remembered grants (see
/// ``StandingQuestion``): which apps a listing or stream shows, and whose content a result carries.
struct StandingDecisions: Sendable {
    let broker: Broker?

    /// Whether `client` may see `app` in a listing or stream (`method`: the call asking).
    func mayObserve(_ client: ClientIdentity, method: String, app: AppTarget) -> Bool {
        observe(client, method: method, app: app).effect == .allow
    }

    /// The standing decision on observing `app`.
    func observe(_ client: ClientIdentity, method: String, app: AppTarget) -> Decision {
        let question = StandingQuestion.observeApp(client: client, method: method, target: app.brokerTarget)
        guard let broker else { return Decision.unavailable(question.request) }
        return broker.standing([question])[0]
    }

    /// Whether `client` may read the content of the element `target` names, as `text.read` of
    /// it would be decided without asking.
    func mayRead(_ client: ClientIdentity, target: ResolvedTarget) -> Bool {
        guard let element = target.element else { return false }
        return readDecisions(client, app: target.app, [ContentSubject(role: element.role, name: element.displayName,
                                                                      origin: element.origin)])[0]
    }

    /// One answer per subject; each distinct subject is decided once.
    func readDecisions(_ client: ClientIdentity, app: AppTarget, _ subjects: [ContentSubject]) -> [Bool] {
        guard let broker else { return subjects.map { _ in false } }
        var unique: [ContentSubject: Int] = [:]
        var questions: [StandingQuestion] = []
        for subject in subjects where unique[subject] == nil {
            unique[subject] = questions.count
            questions.append(.readContent(client: client, app: app.brokerTarget, role: subject.role, name: subject.name,
                                          origin: subject.origin))
        }
        let answers = broker.standing(questions).map { $0.effect == .allow }
        return subjects.map { answers[unique[$0]!] }
    }

    /// The snapshot's content gate for `client` on `app`.
    func contentDecider(_ client: ClientIdentity, app: AppTarget) -> ContentDecider {
        { subjects in readDecisions(client, app: app, subjects) }
    }
}
