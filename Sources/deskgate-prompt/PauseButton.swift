import DBus
import DeskgateClient
import JSONRPC
import Synchronization

/// With `--gui`: a desktop notification with a Pause button while agents are connected
/// (`org.freedesktop.Notifications`, resident, no expiry). Pressing it calls `broker.pause`; the
/// notification goes away when the last agent disconnects. Without a notification server
/// (no session bus, or nobody owns the name) nothing is shown and prompts work as before.
final class PauseButton: Sendable {
    private struct State {
        var id: UInt32?
        var agents = 0
    }

    private let bus: DBusConnection
    private let client: DeskgateClient
    private let state = Mutex(State())
    private static let service = "org.freedesktop.Notifications"
    private static let path = "/org/freedesktop/Notifications"

    private init(bus: DBusConnection, client: DeskgateClient) {
        self.bus = bus
        self.client = client
    }

    /// Connects to the session bus and listens for the server's answers; nil without one.
    static func start(client: DeskgateClient) async -> PauseButton? {
        guard let bus = try? await DBusConnection.openSessionBus() else { return nil }
        let button = PauseButton(bus: bus, client: client)
        _ = bus.addSignalHandler { [button] signal in button.handle(signal) }
        do {
            try await bus.addMatch("type='signal',interface='\(service)',member='ActionInvoked'")
            try await bus.addMatch("type='signal',interface='\(service)',member='NotificationClosed'")
        } catch {
            return nil
        }
        return button
    }

    /// `agent.clients {agents}` from the daemon.
    func agentsChanged(_ agents: Int) async {
        let (shown, changed) = state.withLock { state -> (UInt32?, Bool) in
            defer { state.agents = agents }
            return (state.id, state.agents != agents)
        }
        if agents == 0 {
            if let shown {
                _ = try? await bus.call(destination: Self.service, path: Self.path, interface: Self.service,
                                        member: "CloseNotification", args: [.uint32(shown)], timeout: .seconds(2))
                state.withLock { if $0.id == shown { $0.id = nil } }
            }
            return
        }
        guard changed || shown == nil else { return }
        let body = agents == 1 ? "1 program is connected to deskgate." : "\(agents) programs are connected to deskgate."
        let reply = try? await bus.call(
            destination: Self.service, path: Self.path, interface: Self.service, member: "Notify",
            args: [.string("deskgate"), .uint32(shown ?? 0), .string("dialog-warning"), .string("Agents are connected"),
                   .string(body + " Pause stops every one of them until you resume."),
                   .array(elementSignature: "s", [.string("pause"), .string("Pause")]),
                   .dictionary(keySignature: "s", valueSignature: "v", [
                       DBusDictEntry(key: .string("resident"), value: .variant(.bool(true))),
                       DBusDictEntry(key: .string("urgency"), value: .variant(.byte(1))),
                   ]),
                   .int32(0)],
            timeout: .seconds(2))
        if let id = reply?.first?.integerValue { state.withLock { $0.id = UInt32(truncatingIfNeeded: id) } }
    }

    private func handle(_ signal: DBusSignal) {
        guard signal.interface == Self.service, let id = signal.args.first?.integerValue.map({ UInt32(truncatingIfNeeded: $0) }),
              state.withLock({ $0.id == id }) else { return }
        switch signal.member {
        case "ActionInvoked" where signal.args.count >= 2 && signal.args[1].stringValue == "pause":
            Output.line("deskgate-prompt: Pause pressed; pausing deskgate")
            let client = self.client
            Task { _ = try? await client.call("broker.pause", ["reason": "the Pause button of deskgate-prompt"]) }
        case "NotificationClosed":
            // Dismissed: shown again at the next change of agents.
            state.withLock { $0.id = nil }
        default:
            break
        }
    }
}
