import DBus
import JSONRPC
import Synchronization

/// Whole-app trees read with `Cache.GetItems`, kept current from the app's own change signals,
/// so that a repeat snapshot of an atk-bridge app costs one round trip instead of the app's
/// (quadratic, in GTK3) `GetItems`.
///
/// Why this is sound: atk-bridge always emits, whoever listens, the signals that describe every
/// change to what `GetItems` returns (`signal_is_needed` in at-spi2-core's `atk-adaptor/event.c`
/// passes `ChildrenChanged`, `StateChanged` of non-transient objects and `PropertyChange` of
/// name, description, role and parent unconditionally; `Cache.AddAccessible`/`RemoveAccessible`
/// are sent unconditionally too). libatspi's cache, which Orca relies on, is built the same way.
/// We apply the simple ones (a state bit, a name, a description, a role) and treat every other
/// change that could touch the tree (children, parents, windows, defunct objects, anything we do
/// not recognise) as "re-read the app".
///
/// Signals travel app → bus → us in order, on the bus connection, and this type applies them
/// synchronously on that connection's thread. So after a round trip to the app *over the bus*
/// (``AccessibilityService/barrier(_:)``) every signal the app sent before answering has been
/// applied: a kept tree that is still current then is what a fresh `GetItems` would say, up to
/// changes the app has made but not yet announced.
///
/// Bounded: at most ``Limits/maxNodes`` nodes over all apps (least recently used apps dropped
/// first; a tree larger than that is not kept), and an app's tree is dropped once it has not
/// been used for ``Limits/idleNanoseconds`` (checked when it is next touched: no timers).
final class TreeCache: Sendable {
    struct Limits: Sendable {
        var maxNodes = 100_000
        var idleNanoseconds: UInt64 = 120_000_000_000
    }

    /// What one signal means for a kept tree.
    enum Change: Equatable, Sendable {
        case state(path: String, bit: UInt32, on: Bool)
        case name(path: String, String)
        case description(path: String, String)
        case role(path: String, UInt32)
        /// The tree's shape (or something we cannot apply) changed: read the app again.
        case structural
        /// Nothing `GetItems` returns changed (text, caret, bounds, value...).
        case none
    }

    /// How a kept tree was used for one request.
    enum Use: String, Sendable {
        /// Served from the kept tree, current after a barrier.
        case hit
        /// Read with `GetItems` now (and kept, if it fits).
        case miss
    }

    private struct Entry {
        var nodes: [String: AccessibleNode]?
        /// True while `nodes` reflects every signal received since it was read.
        var current = false
        /// Signals received while a read is in flight, replayed onto its result.
        var log: [Change]?
        var reading: Task<Result<[String: AccessibleNode]?, RPCError>, Never>?
        var lastUsed: UInt64
        var watch: Task<Bool, Never>?
        var watching = false
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var keptNodes = 0
        var signalToken: SignalHandlerToken?
    }

    let limits: Limits
    private let bus: DBusConnection
    private let state = Mutex(State())
    /// Counters for tests and `daemon.info`-style diagnostics.
    private let counters = Mutex(Counters())

    struct Counters: Sendable, Equatable {
        var applied = 0
        var invalidated = 0
        var dropped = 0
    }

    init(bus: DBusConnection, limits: Limits = Limits()) {
        self.bus = bus
        self.limits = limits
    }

    var stats: Counters { counters.withLock { $0 } }

    // MARK: Watching an app

    /// The match rules that bring an app's change signals to this connection.
    static func matchRules(sender: String) -> [String] {
        ["org.a11y.atspi.Event.Object", "org.a11y.atspi.Event.Window", Atspi.cache].map {
            "type='signal',sender='\(sender)',interface='\($0)'"
        }
    }

    /// Makes sure the app's change signals reach us (once per app, shared by concurrent
    /// callers). False when the bus refused the match rules: the app is then read fresh
    /// every time.
    func watch(_ app: String) async -> Bool {
        let task = state.withLock { s -> Task<Bool, Never>? in
            if s.signalToken == nil {
                s.signalToken = bus.addSignalHandler { [weak self] signal in self?.receive(signal) }
            }
            var entry = s.entries[app] ?? Entry(lastUsed: Deadline.now())
            if entry.watching { return nil }
            if let watch = entry.watch { return watch }
            let bus = self.bus
            let watch = Task<Bool, Never> {
                for rule in Self.matchRules(sender: app) {
                    do throws(DBusError) { try await bus.addMatch(rule, timeout: .seconds(2)) } catch { return false }
                }
                return true
            }
            entry.watch = watch
            s.entries[app] = entry
            return watch
        }
        guard let task else { return true }
        let ok = await task.value
        state.withLock { s in
            guard var entry = s.entries[app] else { return }
            entry.watch = nil
            entry.watching = ok
            s.entries[app] = entry
        }
        return ok
    }

    /// Forgets an app (it has gone, or is not to be kept) and stops watching it.
    func drop(_ app: String) {
        let wasWatching = state.withLock { s -> Bool in
            guard let entry = s.entries.removeValue(forKey: app) else { return false }
            s.keptNodes -= entry.nodes?.count ?? 0
            return entry.watching
        }
        guard wasWatching else { return }
        counters.withLock { $0.dropped += 1 }
        let bus = self.bus
        Task {
            for rule in Self.matchRules(sender: app) { try? await bus.removeMatch(rule, timeout: .seconds(2)) }
        }
    }

    func shutdown() {
        let (token, apps) = state.withLock { s in
            defer { s.signalToken = nil }
            return (s.signalToken, Array(s.entries.keys))
        }
        if let token { bus.removeSignalHandler(token) }
        for app in apps { drop(app) }
    }

    // MARK: Reading

    /// Whether the app has a kept tree that is current (before a barrier: a hint).
    func hasCurrentTree(_ app: String) -> Bool {
        state.withLock { s in s.entries[app].map { $0.current && $0.nodes != nil } ?? false }
    }

    /// The kept tree of an app if it is current, marking it used.
    func currentTree(_ app: String) -> [String: AccessibleNode]? {
        let now = Deadline.now()
        let (nodes, expired) = state.withLock { s -> ([String: AccessibleNode]?, Bool) in
            guard let entry = s.entries[app] else { return (nil, false) }
            if entry.nodes != nil, now &- entry.lastUsed > limits.idleNanoseconds { return (nil, true) }
            s.entries[app]!.lastUsed = now
            return (entry.current ? entry.nodes : nil, false)
        }
        if expired { evictIdle(app) }
        return nodes
    }

    private func evictIdle(_ app: String) {
        state.withLock { s in
            guard var entry = s.entries[app] else { return }
            s.keptNodes -= entry.nodes?.count ?? 0
            entry.nodes = nil
            entry.current = false
            entry.lastUsed = Deadline.now()
            s.entries[app] = entry
        }
        counters.withLock { $0.dropped += 1 }
    }

    /// Reads the app's tree with `read` (one `GetItems`; nil: the app has no usable cache), replays the signals that arrived
    /// meanwhile, and keeps the result if it is still current and fits. Concurrent callers for
    /// the same app share one read.
    func refresh(_ app: String, read: @escaping @Sendable () async -> Result<[String: AccessibleNode]?, RPCError>)
        async -> Result<[String: AccessibleNode]?, RPCError>
    {
        let task = state.withLock { s -> Task<Result<[String: AccessibleNode]?, RPCError>, Never> in
            var entry = s.entries[app] ?? Entry(lastUsed: Deadline.now())
            if let reading = entry.reading { return reading }
            entry.log = []
            let reading = Task { [weak self] () -> Result<[String: AccessibleNode]?, RPCError> in
                let result = await read()
                self?.finishRead(app, result)
                return result
            }
            entry.reading = reading
            s.entries[app] = entry
            return reading
        }
        return await task.value
    }

    private func finishRead(_ app: String, _ result: Result<[String: AccessibleNode]?, RPCError>) {
        var evicted: [String] = []
        state.withLock { s in
            guard var entry = s.entries[app] else { return }
            let log = entry.log ?? []
            entry.log = nil
            entry.reading = nil
            s.keptNodes -= entry.nodes?.count ?? 0
            entry.nodes = nil
            entry.current = false
            if case .success(var nodes?) = result, entry.watching, nodes.count <= limits.maxNodes {
                var current = true
                for change in log where current { current = Self.apply(change, to: &nodes) }
                if current {
                    entry.nodes = nodes
                    entry.current = true
                    s.keptNodes += nodes.count
                }
            }
            entry.lastUsed = Deadline.now()
            s.entries[app] = entry
            // Least recently used trees go first, never the one just read.
            while s.keptNodes > limits.maxNodes {
                guard let (victim, _) = s.entries.filter({ $0.key != app && $0.value.nodes != nil })
                    .min(by: { $0.value.lastUsed < $1.value.lastUsed })
                else { break }
                s.keptNodes -= s.entries[victim]?.nodes?.count ?? 0
                s.entries[victim]?.nodes = nil
                s.entries[victim]?.current = false
                evicted.append(victim)
            }
        }
        if !evicted.isEmpty { counters.withLock { $0.dropped += evicted.count } }
    }

    // MARK: Signals

    /// Applies one signal; runs on the bus connection's thread, in arrival order.
    func receive(_ signal: DBusSignal) {
        guard let sender = signal.sender else { return }
        let now = Deadline.now()
        var changeKind = 0  // 0 none, 1 applied, 2 invalidated
        var expired = false
        let change = Self.change(from: signal)
        if change == .none { return }
        state.withLock { s in
            // Moved out and back so the tree is changed in place, not copied for each signal.
            guard var entry = s.entries.removeValue(forKey: sender) else { return }
            defer { s.entries[sender] = entry }
            if entry.log != nil { entry.log!.append(change) }
            if entry.current, entry.nodes != nil {
                if now &- entry.lastUsed > limits.idleNanoseconds {
                    expired = true
                } else if Self.apply(change, to: &entry.nodes!) {
                    changeKind = 1
                } else {
                    entry.current = false
                    changeKind = 2
                }
            }
        }
        if expired {
            // Nobody has used this app's tree for a while: stop following its changes.
            drop(sender)
            return
        }
        if changeKind == 1 { counters.withLock { $0.applied += 1 } }
        if changeKind == 2 { counters.withLock { $0.invalidated += 1 } }
    }

    /// What a signal means for a kept tree (pure; see the type's documentation).
    static func change(from signal: DBusSignal) -> Change {
        let args = signal.args
        let detail = args.first?.stringValue ?? ""
        switch (signal.interface, signal.member) {
        case ("org.a11y.atspi.Event.Object", "StateChanged"):
            // atk-bridge sends "name" or "name/extra" (a ':' in ATK's detail becomes '/').
            let name = AtspiNames.normalizedState(String(detail.split(separator: "/").first ?? ""))
            guard args.count > 1, let on = args[1].integerValue, let bit = AtspiNames.stateBits[name], bit < 64,
                  name != "defunct"
            else { return .structural }
            return .state(path: signal.path, bit: bit, on: on != 0)
        case ("org.a11y.atspi.Event.Object", "PropertyChange"):
            let value = args.count > 3 ? args[3].unwrapped : nil
            switch detail {
            case "accessible-name":
                guard let name = value?.stringValue else { return .structural }
                return .name(path: signal.path, name)
            case "accessible-description":
                guard let description = value?.stringValue else { return .structural }
                return .description(path: signal.path, description)
            case "accessible-role":
                guard let role = value?.integerValue, role >= 0 else { return .structural }
                return .role(path: signal.path, UInt32(truncatingIfNeeded: role))
            case "accessible-parent": return .structural
            default: return .none  // help text, table headers and captions, value: not in the tree
            }
        case ("org.a11y.atspi.Event.Object", "ChildrenChanged"):
            return .structural
        case ("org.a11y.atspi.Event.Object", _):
            // Text, caret, bounds, selection, active descendant, attributes...: not in GetItems.
            return .none
        case ("org.a11y.atspi.Event.Window", _), (Atspi.cache, _):
            return .structural
        default:
            return .none
        }
    }

    /// Applies a change to a tree; false when the tree can no longer be trusted.
    static func apply(_ change: Change, to nodes: inout [String: AccessibleNode]) -> Bool {
        switch change {
        case .none:
            return true
        case .structural:
            return false
        case .state(let path, let bit, let on):
            // An object we do not have is new (its AddAccessible follows) or transient
            // (never in GetItems): nothing to do either way.
            guard nodes[path] != nil else { return true }
            if on { nodes[path]!.states.bits |= 1 << UInt64(bit) } else { nodes[path]!.states.bits &= ~(1 << UInt64(bit)) }
            return true
        case .name(let path, let name):
            if nodes[path] != nil { nodes[path]!.name = name }
            return true
        case .description(let path, let description):
            if nodes[path] != nil { nodes[path]!.description = description }
            return true
        case .role(let path, let role):
            if nodes[path] != nil { nodes[path]!.role = role }
            return true
        }
    }
}
