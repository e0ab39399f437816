import DBus

/// What `elements.wait` looks for: the fields of `elements.find`.
public struct ElementQuery: Sendable, Hashable {
    public var role: String?
    public var name: String?
    public var nameContains: String?
    public var states: [String]

    public init(role: String? = nil, name: String? = nil, nameContains: String? = nil, states: [String] = []) {
        self.role = role
        self.name = name
        self.nameContains = nameContains
        self.states = states
    }
}

/// What `elements.wait` found.
public struct WaitResult: Sendable {
    /// Whether the condition held: an element matched, or with `gone`, none did.
    public var found: Bool
    /// The first matching element (not with `gone`).
    public var node: ElementNode?
    /// How long the wait took.
    public var waitedMs: Int
    /// How many times the app's tree was queried.
    public var queries: Int
}

extension AccessibilityService {
    /// `elements.wait`: returns as soon as an element of the app matches `query` (with `gone`,
    /// as soon as none does), or after `timeout` with `found: false`.
    ///
    /// Nothing polls on a timer: the app's events (children added or removed, states, names and
    /// other properties changing) each trigger a new query, events arriving during a query
    /// trigger one more, and one last query runs at the deadline, because GTK3 announces some
    /// additions nowhere (docs/architecture.md).
    public func waitFor(_ target: ResolvedTarget, query: ElementQuery, gone: Bool,
                        timeout: Duration) async throws(AccessibilityError) -> WaitResult
    {
        let started = Deadline.now()
        let deadline = Deadline(after: timeout)
        let handle = try await registry.live(target.app.id)
        let pulse = Pulse(sleep: config.sleep)
        let watch = try await events.watch(app: handle.id, path: nil, events: [.children, .states, .properties], pulse: pulse)
        var queries = 0
        func elapsedMs() -> Int { Int((Deadline.now() - started) / 1_000_000) }
        do throws(AccessibilityError) {
            var lastQuery = false
            while true {
                pulse.reset()
                queries += 1
                let found = try await find(target, role: query.role, name: query.name, nameContains: query.nameContains,
                                           states: query.states, limit: 1)
                let done = gone ? found.nodes.isEmpty : !found.nodes.isEmpty
                if done || lastQuery {
                    await events.unsubscribe(watch)
                    return WaitResult(found: done, node: gone ? nil : found.nodes.first, waitedMs: elapsedMs(), queries: queries)
                }
                if deadline.hasPassed {
                    lastQuery = true
                    continue
                }
                if await !pulse.wait(deadline.remaining(cap: timeout)) {
                    if Task.isCancelled { throw .cancelled }
                    lastQuery = true
                }
            }
        } catch {
            await events.unsubscribe(watch)
            throw error
        }
    }
}
