import Broker
import DBus
import Logging
import Synchronization

/// Follows the session's screen lock on the session bus and tells the broker: accessibility
/// writes keep working on a locked screen, so while it is locked deskgate pauses act and write
/// (policy `when_locked`).
///
/// Sources: `ActiveChanged(b)` of `org.freedesktop.ScreenSaver` (KDE and others) and of
/// `org.gnome.ScreenSaver` (GNOME Shell), accepted only from the current owner of that well-known
/// name (any client may emit a signal with that interface; only the owner speaks for the
/// screensaver), and `GetActive` asked of each owner at start-up and when the owner changes.
/// logind's `LockedHint` is on the system bus, which this daemon does not use.
final class SessionLockMonitor: Sendable {
    struct Service: Sendable {
        var name: String
        var path: String
        var interface: String { name }
    }

    static let services = [
        Service(name: "org.freedesktop.ScreenSaver", path: "/org/freedesktop/ScreenSaver"),
        Service(name: "org.gnome.ScreenSaver", path: "/org/gnome/ScreenSaver"),
    ]

    /// What is known of each screensaver: its owner (unique name) and whether it says it is
    /// active. Pure: the monitor feeds it bus facts and reads ``locked``.
    struct LockState: Sendable, Equatable {
        var owners: [String: String] = [:]
        var active: [String: Bool] = [:]

        var locked: Bool { active.values.contains(true) }

        /// A name got a new owner, or lost it: what the old owner said no longer counts.
        mutating func ownerChanged(_ name: String, to owner: String?) {
            owners[name] = owner
            active[name] = false
        }

        /// An `ActiveChanged` signal; false (ignored) unless its sender owns that service's name.
        mutating func activeChanged(sender: String?, interface: String, active value: Bool) -> Bool {
            guard let service = SessionLockMonitor.services.first(where: { $0.interface == interface }),
                  let sender, owners[service.name] == sender else { return false }
            active[service.name] = value
            return true
        }

        /// `GetActive`'s answer from `owner`, counted only if it still owns the name.
        mutating func answered(_ name: String, owner: String, active value: Bool) {
            guard owners[name] == owner else { return }
            active[name] = value
        }
    }

    private let connection: DBusConnection
    private let broker: Broker
    private let logger: Logger
    private let state = Mutex(LockState())

    private init(connection: DBusConnection, broker: Broker, logger: Logger) {
        self.connection = connection
        self.broker = broker
        self.logger = logger
    }

    /// Connects to the session bus and starts following; nil (logged) when there is none.
    static func start(broker: Broker, logger: Logger) async -> SessionLockMonitor? {
        let connection: DBusConnection
        do {
            connection = try await DBusConnection.openSessionBus()
        } catch {
            logger.warning("the session's screen lock is not followed: no session bus", metadata: ["error": "\(error)"])
            return nil
        }
        let monitor = SessionLockMonitor(connection: connection, broker: broker, logger: logger)
        await monitor.follow()
        return monitor
    }

    private func follow() async {
        _ = connection.addSignalHandler { [self] signal in handle(signal) }
        do {
            for service in Self.services {
                try await connection.addMatch("type='signal',interface='\(service.interface)',member='ActiveChanged'")
                try await connection.addMatch("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(service.name)'")
            }
        } catch {
            logger.warning("the session's screen lock is not followed: AddMatch failed", metadata: ["error": "\(error)"])
            return
        }
        for service in Self.services {
            let owner = try? await connection.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                                   interface: "org.freedesktop.DBus", member: "GetNameOwner",
                                                   args: [.string(service.name)], timeout: .seconds(2)).first?.stringValue
            guard let owner else { continue }
            let changed = state.withLock { state -> Bool in
                // A NameOwnerChanged may have come first: it is the newer fact.
                guard state.owners[service.name] == nil else { return false }
                state.ownerChanged(service.name, to: owner)
                return true
            }
            if changed { await ask(service, owner: owner) }
        }
        logger.info("following the session's screen lock", metadata: ["locked": "\(state.withLock { $0.locked })"])
    }

    /// Asks the owner whether it is active now.
    private func ask(_ service: Service, owner: String) async {
        do {
            let reply = try await connection.call(destination: owner, path: service.path, interface: service.interface,
                                                  member: "GetActive", timeout: .seconds(2))
            let value = reply.first?.boolValue ?? false
            update { $0.answered(service.name, owner: owner, active: value) }
        } catch {
            logger.debug("GetActive failed", metadata: ["service": "\(service.name)", "error": "\(error)"])
        }
    }

    private func handle(_ signal: DBusSignal) {
        if signal.interface == "org.freedesktop.DBus", signal.member == "NameOwnerChanged" {
            guard signal.args.count == 3, let name = signal.args[0].stringValue,
                  let service = Self.services.first(where: { $0.name == name }) else { return }
            let owner = signal.args[2].stringValue.flatMap { $0.isEmpty ? nil : $0 }
            update { $0.ownerChanged(name, to: owner) }
            if let owner { Task { await ask(service, owner: owner) } }
            return
        }
        guard signal.member == "ActiveChanged", let value = signal.args.first?.boolValue else { return }
        var accepted = false
        update { accepted = $0.activeChanged(sender: signal.sender, interface: signal.interface, active: value) }
        if !accepted {
            logger.info("ignored an ActiveChanged signal from a client that does not own the screensaver's name",
                        metadata: ["sender": "\(signal.sender ?? "?")", "interface": "\(signal.interface)"])
        }
    }

    /// Applies a change and tells the broker the resulting lock state.
    private func update(_ change: (inout LockState) -> Void) {
        let locked = state.withLock { state -> Bool in
            change(&state)
            return state.locked
        }
        broker.setSessionLocked(locked)
    }

    func close() { connection.close() }
}
