#if canImport(Glibc)
import Glibc
#endif
import CSystemd

/// systemd integration: socket activation, readiness and watchdog notifications.
/// Every function is a no-op when the daemon was not started by systemd.
public enum Systemd {
    /// The first socket passed by socket activation, if `LISTEN_PID` names this process.
    /// Clears the `LISTEN_*` variables so children do not inherit them.
    public static func activatedSocket() -> Int32? {
        let count = sd_listen_fds(1)
        guard count > 0 else { return nil }
        return SD_LISTEN_FDS_START
    }

    /// Sends a state string (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=…`) to `$NOTIFY_SOCKET`.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    /// The watchdog interval if `WATCHDOG_USEC` is set for this process.
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }
}
