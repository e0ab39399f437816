import DBus
import Glibc
import Logging

/// The accessibility bus and the session bus it is found through: finding its address,
/// connecting, turning accessibility on (`org.a11y.Status.IsEnabled`) and restoring it.
struct AccessibilityBus: Sendable {
    let bus: DBusConnection
    private let session: DBusConnection?
    /// `IsEnabled` before the daemon set it, when it changed it (restored at shutdown).
    private let previousIsEnabled: Bool?
    private let logger: Logger

    /// The session bus connection, when there is one.
    var sessionConnection: DBusConnection? { session }
    /// Whether the daemon turned `IsEnabled` on at its start (it was off).
    var enabledIsEnabled: Bool { previousIsEnabled == false }

    /// Connects to the accessibility bus: `config.busAddress`, else `AT_SPI_BUS_ADDRESS`, else
    /// `org.a11y.Bus.GetAddress` on the session bus; turns accessibility on if the config says so.
    static func connect(config: AccessibilityConfig, logger: Logger) async throws(AccessibilityError) -> AccessibilityBus {
        var session: DBusConnection?
        func openSession() async -> DBusConnection? {
            if let session { return session }
            do {
                session = try await DBusConnection.openSessionBus()
            } catch {
                logger.info("no session bus", metadata: ["error": "\(error)"])
            }
            return session
        }
        var address = config.busAddress
        if address == nil, let raw = getenv("AT_SPI_BUS_ADDRESS"), raw.pointee != 0 {
            address = String(cString: raw)
        }
        if address == nil, let session = await openSession() {
            do {
                let reply = try await session.call(destination: "org.a11y.Bus", path: "/org/a11y/bus",
                                                   interface: "org.a11y.Bus", member: "GetAddress",
                                                   timeout: .seconds(5))
                address = reply.first?.stringValue
            } catch {
                logger.warning("org.a11y.Bus.GetAddress failed", metadata: ["error": "\(error)"])
            }
        }
        guard let address, !address.isEmpty else {
            throw .busUnavailable("no AT_SPI_BUS_ADDRESS and no org.a11y.Bus")
        }
        let bus: DBusConnection
        do {
            bus = try await DBusConnection.open(address: address, isBus: true, name: "a11y-bus")
        } catch {
            throw .busUnavailable(error.name)
        }
        var previous: Bool?
        if config.enableAccessibility, let session = await openSession() {
            previous = await setIsEnabled(true, session: session, logger: logger)
        }
        logger.info("accessibility bus connected", metadata: ["name": "\(bus.uniqueName ?? "?")"])
        return AccessibilityBus(bus: bus, session: session, previousIsEnabled: previous, logger: logger)
    }

    /// Sets `org.a11y.Status.IsEnabled`; returns the previous value when it changed it.
    private static func setIsEnabled(_ value: Bool, session: DBusConnection, logger: Logger) async -> Bool? {
        do {
            let reply = try await session.call(destination: "org.a11y.Bus", path: "/org/a11y/bus",
                                               interface: Atspi.properties, member: "Get",
                                               args: [.string("org.a11y.Status"), .string("IsEnabled")],
                                               timeout: .seconds(2))
            let current = reply.first?.boolValue
            if current == value { return nil }
            _ = try await session.call(destination: "org.a11y.Bus", path: "/org/a11y/bus",
                                       interface: Atspi.properties, member: "Set",
                                       args: [.string("org.a11y.Status"), .string("IsEnabled"), .variant(.bool(value))],
                                       timeout: .seconds(2))
            return current ?? !value
        } catch {
            logger.warning("cannot set org.a11y.Status.IsEnabled", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Restores `IsEnabled` and closes both connections.
    func close() async {
        if let previousIsEnabled, let session {
            _ = await Self.setIsEnabled(previousIsEnabled, session: session, logger: logger)
        }
        bus.close()
        session?.close()
    }
}
