import DBus
import Synchronization

/// One accessibility event, as delivered to subscribers.
public struct AccessibilityEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case focus, window, children, state, name, text
    }

    public enum Detail: Sendable, Hashable {
        case focus
        /// `activate`, `deactivate`, `create`, ...
        case window(event: String)
        case children(change: String, index: Int64, child: String?)
        case state(name: String, value: Bool)
        case name(String)
        /// A text change: where and how much, and the text inserted or removed when the app sent it.
        case text(change: String, offset: Int64, length: Int64, text: String?)
    }

    public var kind: Kind
    /// The app's id (its unique bus name).
    public var app: String
    /// Who the app is (from the bus and /proc), for deciding who may see the event; nil when it
    /// could not be learned (such events are not delivered).
    public var appTarget: AppTarget?
    /// The source element's ref (nil when its role could not be read).
    public var ref: String?
    /// The source element's role.
    public var role: String?
    /// For text events: what a person calls the source, read live (its label, else its name),
    /// so content can be decided on the element it comes from.
    public var sourceName: String?
    /// For text events in a browser: the origin of the web page holding the source, read live
    /// (``AccessibilityService/documentOrigin(_:path:)``), so origin rules on `read` hold for
    /// events as they do for snapshots.
    public var sourceOrigin: String?
    public var detail: Detail
}

/// Routes AT-SPI event signals to subscribers as ``AccessibilityEvent``s.
///
/// Toolkits only emit what someone registered for, so each event type is registered with the
/// registry (and its match rule added on the bus) while at least one subscription wants it.
/// Password fields' text events are never delivered at all: not their text, not their length,
/// not their timing (a keystroke's rhythm is a secret too). A text event whose source's role
/// cannot be read is dropped as well.
final class EventRouter: Sendable {
    typealias Handler = @Sendable (AccessibilityEvent) -> Void

    private struct Subscription {
        let registrations: Set<Registration>
        /// A client's subscription: the kinds it gets, converted, through `handler`.
        var types: Set<AccessibilityEvent.Kind> = []
        var handler: Handler?
        /// An operation's wait (``watch(app:path:events:pulse:)``): only told that its app (and
        /// element) sent one of these signal members; nothing is read from the app for it.
        var watch: (app: String, path: String?, members: Set<String>, pulse: Pulse)?
    }

    /// One event registration: the match rule on our connection and the event name registered
    /// with the registry (toolkits emit only what someone registered for).
    private struct Registration: Hashable {
        let rule: String
        let event: String

        static let object = "type='signal',interface='org.a11y.atspi.Event.Object'"
        static let stateChanged = Registration(rule: object + ",member='StateChanged'", event: "object:state-changed")
        static let childrenChanged = Registration(rule: object + ",member='ChildrenChanged'", event: "object:children-changed")
        static let textChanged = Registration(rule: object + ",member='TextChanged'", event: "object:text-changed")
        static let propertyChange = Registration(rule: object + ",member='PropertyChange'", event: "object:property-change")

        /// What a client's kind of event needs.
        static func of(_ type: AccessibilityEvent.Kind) -> Registration {
            switch type {
            case .focus: Registration(rule: object + ",member='StateChanged'", event: "object:state-changed:focused")
            case .state: stateChanged
            case .window: Registration(rule: "type='signal',interface='org.a11y.atspi.Event.Window'", event: "window:")
            case .children: childrenChanged
            case .name: Registration(rule: object + ",member='PropertyChange'", event: "object:property-change:accessible-name")
            case .text: textChanged
            }
        }

        /// What an operation's wait needs, and the signal member it wakes on.
        static func of(_ watched: WatchedEvent) -> (Registration, member: String) {
            switch watched {
            case .states: (stateChanged, "StateChanged")
            case .children: (childrenChanged, "ChildrenChanged")
            case .properties: (propertyChange, "PropertyChange")
            case .text: (textChanged, "TextChanged")
            }
        }
    }

    private struct State {
        var subscriptions: [UInt64: Subscription] = [:]
        var nextID: UInt64 = 1
        var counts: [Registration: Int] = [:]
        var signalToken: SignalHandlerToken?
        var continuation: AsyncStream<DBusSignal>.Continuation?
        var pump: Task<Void, Never>?
    }

    private let state = Mutex(State())
    private let service = Mutex<Weak?>(nil)

    private final class Weak: Sendable {
        private let box: Mutex<AccessibilityService?>
        init(_ service: AccessibilityService) { box = Mutex(service) }
        var value: AccessibilityService? { box.withLock { $0 } }
        func clear() { box.withLock { $0 = nil } }
    }

    func attach(service: AccessibilityService) {
        // Not a strong reference: the service owns the router.
        self.service.withLock { $0 = Weak(service) }
    }

    private var owner: AccessibilityService? { service.withLock { $0 }?.value }

    func subscribe(_ types: Set<AccessibilityEvent.Kind>, handler: @escaping Handler) async throws(AccessibilityError)
        -> SubscriptionID
    {
        try await add(Subscription(registrations: Set(types.map(Registration.of)), types: types, handler: handler),
                      barrier: nil)
    }

    /// Signals `pulse` whenever app `app` (only its element at `path`, when given) announces one
    /// of `events`, until ``unsubscribe(_:)``. For operations that wait on the app (states
    /// settling after an action, `elements.wait`). The events are registered with the registry
    /// while the watch lasts; when that is new, the app is pinged over the bus before this
    /// returns, so it has heard of the registration before the operation's next call reaches it.
    func watch(app: String, path: String?, events: Set<WatchedEvent>, pulse: Pulse) async throws(AccessibilityError)
        -> SubscriptionID
    {
        let parts = events.map(Registration.of)
        return try await add(Subscription(registrations: Set(parts.map(\.0)),
                                          watch: (app, path, Set(parts.map(\.member)), pulse)),
                             barrier: app)
    }

    private func add(_ subscription: Subscription, barrier app: String?) async throws(AccessibilityError) -> SubscriptionID {
        guard let service = owner else { throw .busUnavailable("accessibility service is shut down") }
        let (id, fresh, stream) = state.withLock { s -> (UInt64, [Registration], AsyncStream<DBusSignal>?) in
            let id = s.nextID
            s.nextID += 1
            s.subscriptions[id] = subscription
            var fresh: [Registration] = []
            for registration in subscription.registrations {
                s.counts[registration, default: 0] += 1
                if s.counts[registration] == 1 { fresh.append(registration) }
            }
            var stream: AsyncStream<DBusSignal>?
            if s.continuation == nil {
                let (newStream, continuation) = AsyncStream<DBusSignal>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
                s.continuation = continuation
                stream = newStream
                s.signalToken = service.bus.addSignalHandler { signal in
                    if signal.interface.hasPrefix("org.a11y.atspi.Event.") { continuation.yield(signal) }
                }
            }
            return (id, fresh, stream)
        }
        if let stream {
            let pump = Task { [weak self] in
                for await signal in stream {
                    guard let self else { return }
                    await self.deliver(signal)
                }
            }
            state.withLock { $0.pump = pump }
        }
        for registration in fresh {
            do {
                try await service.bus.addMatch(registration.rule)
                _ = try await service.bus.call(destination: Atspi.registry, path: Atspi.registryPath,
                                               interface: "org.a11y.atspi.Registry", member: "RegisterEvent",
                                               args: [.string(registration.event), .strings([]), .string("")],
                                               timeout: .seconds(2))
            } catch {
                await unsubscribe(SubscriptionID(value: id))
                throw .busUnavailable("cannot register for \(registration.event) events: \(error.name)")
            }
        }
        if let app, !fresh.isEmpty {
            // The registry told the app before it answered us; a ping over the bus returns after
            // the app has read that (our calls may travel on a peer-to-peer connection, which
            // the bus does not order against the registry's signal).
            _ = try? await service.bus.call(destination: app, path: Atspi.rootPath, interface: "org.freedesktop.DBus.Peer",
                                            member: "Ping", args: [], timeout: service.config.readTimeout)
        }
        return SubscriptionID(value: id)
    }

    func unsubscribe(_ id: SubscriptionID) async {
        let gone = state.withLock { s -> [Registration] in
            guard let subscription = s.subscriptions.removeValue(forKey: id.value) else { return [] }
            var gone: [Registration] = []
            for registration in subscription.registrations {
                s.counts[registration, default: 1] -= 1
                if s.counts[registration] == 0 {
                    s.counts.removeValue(forKey: registration)
                    gone.append(registration)
                }
            }
            return gone
        }
        await deregister(gone)
    }

    private func deregister(_ registrations: [Registration]) async {
        guard let service = owner else { return }
        for registration in registrations {
            _ = try? await service.bus.call(destination: Atspi.registry, path: Atspi.registryPath,
                                            interface: "org.a11y.atspi.Registry", member: "DeregisterEvent",
                                            args: [.string(registration.event)], timeout: .seconds(2))
            try? await service.bus.removeMatch(registration.rule)
        }
    }

    func shutdown() async {
        let (types, token, continuation, pump, pulses) = state.withLock { s in
            defer {
                s.subscriptions.removeAll()
                s.counts.removeAll()
                s.signalToken = nil
                s.continuation = nil
                s.pump = nil
            }
            return (Array(s.counts.keys), s.signalToken, s.continuation, s.pump,
                    s.subscriptions.values.compactMap { $0.watch?.pulse })
        }
        for pulse in pulses { pulse.close() }
        await deregister(types)
        if let token { owner?.bus.removeSignalHandler(token) }
        continuation?.finish()
        pump?.cancel()
        service.withLock { $0?.clear() }
    }

    // MARK: Conversion

    private func deliver(_ signal: DBusSignal) async {
        guard let service = owner, let sender = signal.sender else { return }
        // Which types this signal can become, and whether anyone wants one of them (before any
        // call to the app).
        let candidateTypes: Set<AccessibilityEvent.Kind>
        switch (signal.interface, signal.member) {
        case ("org.a11y.atspi.Event.Object", "StateChanged"): candidateTypes = [.focus, .state]
        case ("org.a11y.atspi.Event.Object", "ChildrenChanged"): candidateTypes = [.children]
        case ("org.a11y.atspi.Event.Object", "PropertyChange"): candidateTypes = [.name]
        case ("org.a11y.atspi.Event.Object", "TextChanged"): candidateTypes = [.text]
        case ("org.a11y.atspi.Event.Window", _): candidateTypes = [.window]
        default: return
        }
        let (anyone, pulses) = state.withLock { s -> (Bool, [Pulse]) in
            var anyone = false
            var pulses: [Pulse] = []
            for sub in s.subscriptions.values {
                if let watch = sub.watch {
                    if watch.app == sender, watch.members.contains(signal.member),
                       watch.path == nil || watch.path == signal.path
                    {
                        pulses.append(watch.pulse)
                    }
                } else if !sub.types.isDisjoint(with: candidateTypes) {
                    anyone = true
                }
            }
            return (anyone, pulses)
        }
        // Watches are told which element spoke (a popup that an action opened announces itself).
        for pulse in pulses { pulse.signal(from: signal.path) }
        guard anyone else { return }
        let args = signal.args
        let detail = args.first?.stringValue ?? ""
        let detail1 = args.count > 1 ? args[1].integerValue ?? 0 : 0
        let detail2 = args.count > 2 ? args[2].integerValue ?? 0 : 0
        let data = args.count > 3 ? args[3].unwrapped : nil
        var produced: [(AccessibilityEvent.Kind, AccessibilityEvent.Detail)] = []
        switch (signal.interface, signal.member) {
        case ("org.a11y.atspi.Event.Object", "StateChanged"):
            let state = AtspiNames.normalizedState(detail)
            if state == "focused", detail1 != 0 { produced.append((.focus, .focus)) }
            produced.append((.state, .state(name: state, value: detail1 != 0)))
        case ("org.a11y.atspi.Event.Object", "ChildrenChanged"):
            var child: String?
            if Self.baseDetail(detail) == "add", let reference = data?.objectReference {
                child = await service.eventSource(app: sender, path: reference.path, live: false)?.ref
            }
            produced.append((.children, .children(change: Self.baseDetail(detail), index: detail1, child: child)))
        case ("org.a11y.atspi.Event.Object", "PropertyChange"):
            guard detail == "accessible-name" else { return }
            produced.append((.name, .name(data?.stringValue ?? "")))
        case ("org.a11y.atspi.Event.Object", "TextChanged"):
            produced.append((.text, .text(change: Self.baseDetail(detail), offset: detail1, length: detail2,
                                          text: data?.stringValue)))
        case ("org.a11y.atspi.Event.Window", let member):
            produced.append((.window, .window(event: member.lowercased())))
        default:
            return
        }
        let wanted = state.withLock { s in
            s.subscriptions.values.filter { sub in sub.handler != nil && produced.contains { sub.types.contains($0.0) } }
        }
        guard !wanted.isEmpty else { return }
        // Text events: the source is read live (role, name, label), so a password field is known
        // for what it is now and content is decided on the element it comes from.
        let isText = produced.contains { $0.0 == .text }
        let source = await service.eventSource(app: sender, path: signal.path, live: isText)
        var appTarget = service.registry.known(sender)?.target
        if appTarget == nil { appTarget = try? await service.registry.handle(id: sender, rootPath: Atspi.rootPath).target }
        for (type, detailValue) in produced {
            if type == .text {
                guard let source, let role = source.role, role != AtspiNames.passwordRole else { continue }
            }
            let event = AccessibilityEvent(kind: type, app: sender, appTarget: appTarget, ref: source?.ref,
                                           role: source?.role.map(AtspiNames.role), sourceName: source?.displayName,
                                           sourceOrigin: source?.origin, detail: detailValue)
            for subscription in wanted where subscription.types.contains(type) { subscription.handler?(event) }
        }
    }

    private static func baseDetail(_ detail: String) -> String {
        String(detail.split(separator: ":").first ?? "")
    }
}

extension AccessibilityService {
    /// `events.subscribe`: calls `handler` with each event of the given kinds until unsubscribed.
    public func subscribe(_ kinds: Set<AccessibilityEvent.Kind>,
                          handler: @escaping @Sendable (AccessibilityEvent) -> Void) async throws(AccessibilityError)
        -> SubscriptionID
    {
        try await events.subscribe(kinds, handler: handler)
    }

    public func unsubscribe(_ id: SubscriptionID) async {
        await events.unsubscribe(id)
    }

    /// An event's source element. With `live`, its role, name and label are read now (text
    /// events); otherwise the ref table's role is used, reading the role only for elements new to
    /// the daemon.
    func eventSource(app: String, path: String, live: Bool) async -> EventSource? {
        if !live, let known = refs.existing(app: app, path: path) {
            return EventSource(ref: known.ref, role: known.entry.role, displayName: nil)
        }
        guard let handle = try? await registry.handle(id: app, rootPath: Atspi.rootPath) else { return nil }
        if live {
            guard let (node, label) = try? await readElement(handle, path: path, ref: path) else { return nil }
            let ref = refs.ref(app: app, path: path, role: node.role, name: node.name)
            let display = (label?.isEmpty == false ? label : nil) ?? node.name
            // A page whose origin cannot be read is decided with none: it matches no origin rule.
            let origin = (try? await documentOrigin(handle, path: path)) ?? nil
            return EventSource(ref: ref, role: node.role, displayName: display, origin: origin)
        }
        // Role and name in one round trip: the ref is issued with the name the element has.
        guard let replies = try? await calls.batch(handle, [(path, Atspi.accessible, "GetRole", []),
                                                      (path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Name")])],
                                             timeout: config.readTimeout),
              let role = (try? replies[0].get())?.first?.integerValue
        else { return nil }
        let roleNumber = UInt32(truncatingIfNeeded: role)
        let name = (try? replies[1].get())?.first?.unwrapped.stringValue ?? ""
        return EventSource(ref: refs.ref(app: app, path: path, role: roleNumber, name: name), role: roleNumber, displayName: nil)
    }
}

/// The element an event came from.
struct EventSource: Sendable {
    var ref: String
    var role: UInt32?
    var displayName: String?
    /// The origin of the web page holding it (live sources in browsers only).
    var origin: String? = nil
}

/// Events an operation can wait for (``EventRouter/watch(app:path:events:pulse:)``).
enum WatchedEvent: Hashable, Sendable {
    /// `object:state-changed`
    case states
    /// `object:children-changed`
    case children
    /// `object:property-change` (name, description, value, parent...)
    case properties
    /// `object:text-changed`
    case text
}
