public import JSONRPC
import DBus
import Synchronization

/// Routes AT-SPI event signals to subscribers as `{type, app, ref, detail}` objects.
///
/// Toolkits only emit what someone registered for, so each event type is registered with the
/// registry (and its match rule added on the bus) while at least one subscription wants it.
/// Text events never carry the text of password fields.
final class EventRouter: Sendable {
    typealias Handler = @Sendable (JSONValue) -> Void

    private struct Subscription {
        let types: Set<String>
        let handler: Handler
    }

    private struct State {
        var subscriptions: [UInt64: Subscription] = [:]
        var nextID: UInt64 = 1
        var typeCounts: [String: Int] = [:]
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

    static let types: Set<String> = ["focus", "window", "children", "state", "name", "text"]

    /// Match rule and registry event name of each type.
    private static func registration(_ type: String) -> (rule: String, event: String) {
        let object = "type='signal',interface='org.a11y.atspi.Event.Object'"
        switch type {
        case "focus": return (object + ",member='StateChanged'", "object:state-changed:focused")
        case "state": return (object + ",member='StateChanged'", "object:state-changed")
        case "window": return ("type='signal',interface='org.a11y.atspi.Event.Window'", "window:")
        case "children": return (object + ",member='ChildrenChanged'", "object:children-changed")
        case "name": return (object + ",member='PropertyChange'", "object:property-change:accessible-name")
        default: return (object + ",member='TextChanged'", "object:text-changed")
        }
    }

    func attach(service: AccessibilityService) {
        // Not a strong reference: the service owns the router.
        self.service.withLock { $0 = Weak(service) }
    }

    private var owner: AccessibilityService? { service.withLock { $0 }?.value }

    func subscribe(_ types: Set<String>, handler: @escaping Handler) async throws -> SubscriptionID {
        guard let service = owner else { throw RPCError(.busUnavailable, "accessibility service is shut down") }
        for type in types where !Self.types.contains(type) {
            throw RPCError.invalidParams(field: "events", "unknown event type \(JSONWriter.escapedForMessage(type))")
        }
        let (id, newTypes, stream) = state.withLock { s -> (UInt64, [String], AsyncStream<DBusSignal>?) in
            let id = s.nextID
            s.nextID += 1
            s.subscriptions[id] = Subscription(types: types, handler: handler)
            var fresh: [String] = []
            for type in types {
                s.typeCounts[type, default: 0] += 1
                if s.typeCounts[type] == 1 { fresh.append(type) }
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
        for type in newTypes {
            let (rule, event) = Self.registration(type)
            do {
                try await service.bus.addMatch(rule)
                _ = try await service.bus.call(destination: Atspi.registry, path: Atspi.registryPath,
                                               interface: "org.a11y.atspi.Registry", member: "RegisterEvent",
                                               args: [.string(event), .strings([]), .string("")],
                                               timeout: .seconds(2))
            } catch {
                await unsubscribe(SubscriptionID(value: id))
                throw RPCError(.busUnavailable, "cannot register for \(type) events: \(error.name)")
            }
        }
        return SubscriptionID(value: id)
    }

    func unsubscribe(_ id: SubscriptionID) async {
        let gone = state.withLock { s -> [String] in
            guard let subscription = s.subscriptions.removeValue(forKey: id.value) else { return [] }
            var gone: [String] = []
            for type in subscription.types {
                s.typeCounts[type, default: 1] -= 1
                if s.typeCounts[type] == 0 {
                    s.typeCounts.removeValue(forKey: type)
                    gone.append(type)
                }
            }
            return gone
        }
        await deregister(gone)
    }

    private func deregister(_ types: [String]) async {
        guard let service = owner else { return }
        for type in types {
            let (rule, event) = Self.registration(type)
            _ = try? await service.bus.call(destination: Atspi.registry, path: Atspi.registryPath,
                                            interface: "org.a11y.atspi.Registry", member: "DeregisterEvent",
                                            args: [.string(event)], timeout: .seconds(2))
            try? await service.bus.removeMatch(rule)
        }
    }

    func shutdown() async {
        let (types, token, continuation, pump) = state.withLock { s in
            defer {
                s.subscriptions.removeAll()
                s.typeCounts.removeAll()
                s.signalToken = nil
                s.continuation = nil
                s.pump = nil
            }
            return (Array(s.typeCounts.keys), s.signalToken, s.continuation, s.pump)
        }
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
        let candidateTypes: Set<String>
        switch (signal.interface, signal.member) {
        case ("org.a11y.atspi.Event.Object", "StateChanged"): candidateTypes = ["focus", "state"]
        case ("org.a11y.atspi.Event.Object", "ChildrenChanged"): candidateTypes = ["children"]
        case ("org.a11y.atspi.Event.Object", "PropertyChange"): candidateTypes = ["name"]
        case ("org.a11y.atspi.Event.Object", "TextChanged"): candidateTypes = ["text"]
        case ("org.a11y.atspi.Event.Window", _): candidateTypes = ["window"]
        default: return
        }
        let anyone = state.withLock { s in s.subscriptions.values.contains { !$0.types.isDisjoint(with: candidateTypes) } }
        guard anyone else { return }
        let args = signal.args
        let detail = args.first?.stringValue ?? ""
        let detail1 = args.count > 1 ? args[1].integerValue ?? 0 : 0
        let detail2 = args.count > 2 ? args[2].integerValue ?? 0 : 0
        let data = args.count > 3 ? args[3].unwrapped : nil
        var produced: [(String, JSONObject)] = []
        switch (signal.interface, signal.member) {
        case ("org.a11y.atspi.Event.Object", "StateChanged"):
            let state = AtspiNames.normalizedState(detail)
            if state == "focused", detail1 != 0 { produced.append(("focus", [:])) }
            produced.append(("state", ["state": .string(state), "value": .bool(detail1 != 0)]))
        case ("org.a11y.atspi.Event.Object", "ChildrenChanged"):
            var object: JSONObject = ["change": .string(Self.baseDetail(detail)), "index": .int(detail1)]
            if Self.baseDetail(detail) == "add", let child = data?.objectReference,
               let ref = await service.eventRef(app: sender, path: child.path)
            {
                object.append("child", .string(ref.ref))
            }
            produced.append(("children", object))
        case ("org.a11y.atspi.Event.Object", "PropertyChange"):
            guard detail == "accessible-name" else { return }
            produced.append(("name", ["name": .string(data?.stringValue ?? "")]))
        case ("org.a11y.atspi.Event.Object", "TextChanged"):
            produced.append(("text", ["change": .string(Self.baseDetail(detail)), "offset": .int(detail1),
                                      "length": .int(detail2)]))
        case ("org.a11y.atspi.Event.Window", let member):
            produced.append(("window", ["event": .string(member.lowercased())]))
        default:
            return
        }
        let wanted = state.withLock { s in
            s.subscriptions.values.filter { sub in produced.contains { sub.types.contains($0.0) } }
        }
        guard !wanted.isEmpty else { return }
        let source = await service.eventRef(app: sender, path: signal.path)
        for (type, var detailObject) in produced {
            // Text only from fields known not to be password fields.
            if type == "text", let source, source.role != AtspiNames.passwordRole, let text = data?.stringValue {
                detailObject.append("text", .string(text))
            }
            let event: JSONValue = [
                "type": .string(type), "app": .string(sender), "ref": source.map { .string($0.ref) } ?? .null,
                "detail": .object(detailObject),
            ]
            for subscription in wanted where subscription.types.contains(type) { subscription.handler(event) }
        }
    }

    private static func baseDetail(_ detail: String) -> String {
        String(detail.split(separator: ":").first ?? "")
    }
}

extension AccessibilityService {
    /// `events.subscribe`: calls `handler` with `{type, app, ref, detail}` for each event of the
    /// given types ("focus", "window", "children", "state", "name", "text") until unsubscribed.
    public func subscribe(_ types: Set<String>, handler: @escaping @Sendable (JSONValue) -> Void) async throws
        -> SubscriptionID
    {
        try await events.subscribe(types, handler: handler)
    }

    public func unsubscribe(_ id: SubscriptionID) async {
        await events.unsubscribe(id)
    }

    /// The ref and role of an event's source, reading the role if the element is new to us.
    func eventRef(app: String, path: String) async -> (ref: String, role: UInt32)? {
        if let known = refs.existing(app: app, path: path) { return (known.ref, known.entry.role) }
        guard let handle = try? await handle(busName: app, rootPath: Atspi.rootPath),
              let role = try? await call(handle, path, Atspi.accessible, "GetRole", timeout: config.smallCallTimeout)
                .first?.integerValue
        else { return nil }
        let roleNumber = UInt32(truncatingIfNeeded: role)
        return (refs.ref(app: app, path: path, role: roleNumber, name: ""), roleNumber)
    }
}
