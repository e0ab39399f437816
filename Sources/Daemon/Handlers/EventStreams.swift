#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import ATSPI
import Broker
import DeskgateAPI
public import JSONRPC
import Synchronization

/// The open `events.subscribe` streams. Each event is decided for each stream like any request,
/// without prompting: the app must be observable by this client (a rule or a remembered grant),
/// and a text event's element readable by it. Decisions are remembered per app until something
/// that can change them changes (``refresh()``, called on the broker's `decisionsChanged`), or
/// the rule or grant behind them expires; a stream that loses an app gets one `withheld` event.
final class EventStreams: Sendable {
    private let decisions: StandingDecisions
    private let streams = Mutex<[ObjectIdentifier: Stream]>([:])

    init(broker: Broker?) {
        decisions = StandingDecisions(broker: broker)
    }

    /// Subscribes `session` to `kinds`; the stream ends when the connection closes.
    func open(_ accessibility: any Accessibility, session: ClientSession, client: ClientIdentity,
              kinds: Set<AccessibilityEvent.Kind>) async throws {
        let stream = Stream(session: session, client: client, decisions: decisions)
        let id = try await accessibility.subscribe(kinds) { event in stream.deliver(event) }
        streams.withLock { $0[ObjectIdentifier(stream)] = stream }
        session.onClose { [weak self] in
            self?.streams.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(stream)) }
            Task { await accessibility.unsubscribe(id) }
        }
    }

    /// Decides again, at once, every app each stream shows: apps no longer allowed get their
    /// `withheld` event and no more events.
    func refresh() {
        for stream in streams.withLock({ Array($0.values) }) { stream.refresh() }
    }

    /// Open streams (tests and `daemon.info`).
    var count: Int { streams.withLock { $0.count } }

    /// One client's stream and the decisions it remembers.
    final class Stream: Sendable {
        private struct Remembered {
            var allowed: Bool
            var until: Date?
            var app: AppTarget
            var reason: String?
        }

        private struct State {
            var apps: [String: Remembered] = [:]
            var reads: [ReadKey: (allowed: Bool, until: Date?)] = [:]
        }

        private struct ReadKey: Hashable {
            var app: String
            var subject: ContentSubject
        }

        let session: ClientSession
        let client: ClientIdentity
        private let decisions: StandingDecisions
        private let state = Mutex(State())

        init(session: ClientSession, client: ClientIdentity, decisions: StandingDecisions) {
            self.session = session
            self.client = client
            self.decisions = decisions
        }

        func deliver(_ event: AccessibilityEvent) {
            // Who the app is could not be learned: nothing to decide on, nothing delivered.
            guard let app = event.appTarget, mayObserve(app) else { return }
            if event.kind == .text {
                guard let role = event.role, let name = event.sourceName,
                      mayRead(app, ContentSubject(role: role, name: name, origin: event.sourceOrigin)) else { return }
            }
            session.notify(ServerMessages.event, EventWire.json(event))
        }

        private func mayObserve(_ app: AppTarget) -> Bool {
            let now = Date()
            if let known = state.withLock({ $0.apps[app.id] }), known.app == app, known.until.map({ now < $0 }) ?? true {
                return known.allowed
            }
            let decision = decisions.observe(client, method: EventsSubscribe.name, app: app)
            let allowed = decision.effect == .allow
            let wasAllowed = state.withLock { state -> Bool in
                let was = state.apps[app.id]?.allowed ?? false
                state.apps[app.id] = Remembered(allowed: allowed, until: decision.validUntil, app: app,
                                                reason: decision.reason?.rawValue)
                return was
            }
            if wasAllowed && !allowed { withhold(app.id, reason: decision.reason?.rawValue) }
            return allowed
        }

        private func mayRead(_ app: AppTarget, _ subject: ContentSubject) -> Bool {
            let key = ReadKey(app: app.id, subject: subject)
            let now = Date()
            if let known = state.withLock({ $0.reads[key] }), known.until.map({ now < $0 }) ?? true { return known.allowed }
            let allowed = decisions.readDecisions(client, app: app, [subject])[0]
            state.withLock { $0.reads[key] = (allowed, nil) }
            return allowed
        }

        /// Re-decides every app this stream has shown; forgets content decisions.
        func refresh() {
            let shown = state.withLock { state -> [Remembered] in
                state.reads = [:]
                return state.apps.values.filter(\.allowed)
            }
            for previous in shown {
                let decision = decisions.observe(client, method: EventsSubscribe.name, app: previous.app)
                let allowed = decision.effect == .allow
                state.withLock {
                    $0.apps[previous.app.id] = Remembered(allowed: allowed, until: decision.validUntil, app: previous.app,
                                                          reason: decision.reason?.rawValue)
                }
                if !allowed { withhold(previous.app.id, reason: decision.reason?.rawValue) }
            }
            // Apps that were not shown are decided again at their next event.
            state.withLock { $0.apps = $0.apps.filter { $0.value.allowed } }
        }

        private func withhold(_ app: String, reason: String?) {
            session.notify(ServerMessages.event, ["type": "withheld", "app": .string(app), "ref": .null,
                                                  "detail": ["reason": .string(reason ?? "policy")]])
        }
    }
}

/// The wire form of accessibility events.
public enum EventWire {
    /// `{type, app, ref, detail}` as clients receive it.
    public static func json(_ event: AccessibilityEvent) -> JSONValue {
        let detail: JSONObject
        switch event.detail {
        case .focus:
            detail = [:]
        case .window(let name):
            detail = ["event": .string(name)]
        case .children(let change, let index, let child):
            var object: JSONObject = ["change": .string(change), "index": .int(index)]
            if let child { object.append("child", .string(child)) }
            detail = object
        case .state(let name, let value):
            detail = ["state": .string(name), "value": .bool(value)]
        case .name(let name):
            detail = ["name": .string(name)]
        case .text(let change, let offset, let length, let text):
            var object: JSONObject = ["change": .string(change), "offset": .int(offset), "length": .int(length)]
            if let text { object.append("text", .string(text)) }
            detail = object
        }
        return ["type": .string(event.kind.rawValue), "app": .string(event.app), "ref": event.ref.map(JSONValue.string) ?? .null,
                "detail": .object(detail)]
    }
}
