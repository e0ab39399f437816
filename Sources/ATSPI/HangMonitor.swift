import DBus
import Logging
import Synchronization

/// Apps that stopped answering: marked hung, so calls to them fail at once (-32004) instead of
/// each waiting out its timeout, and pinged until they answer again (served again) or leave the
/// bus (forgotten).
struct HangMonitor: Sendable {
    let registry: AppRegistry
    let logger: Logger

    /// Marks an app hung and starts its pings, unless they run already.
    func markHung(_ app: AppHandle) {
        let startPing = app.health.withLock { h -> Bool in
            h.hung = true
            if h.pinging { return false }
            h.pinging = true
            return true
        }
        guard startPing else { return }
        logger.notice("app not responding; pinging", metadata: ["app": "\(app.id)", "pid": "\(app.pid)"])
        let bus = registry.bus
        let registry = self.registry
        let logger = self.logger
        Task {
            while true {
                do throws(DBusError) {
                    _ = try await bus.call(destination: app.id, path: "/", interface: "org.freedesktop.DBus.Peer",
                                           member: "Ping", timeout: .seconds(30))
                    app.health.withLock { $0 = AppHandle.Health() }
                    logger.notice("app responds again", metadata: ["app": "\(app.id)"])
                    return
                } catch {
                    if error.isPeerGone || error.name == DBusError.disconnectedName {
                        app.health.withLock { $0.pinging = false }
                        registry.forget(app)
                        return
                    }
                    if !bus.isConnected { return }
                }
            }
        }
    }
}
