import DBus
import Synchronization

/// A registered application and how to talk to it.
final class AppHandle: Sendable {
    /// The app's id: its unique name on the accessibility bus (never reused while the bus runs).
    let id: String
    let rootPath: String
    let pid: Int32
    let exe: String?
    /// Start time of the process (`/proc/PID/stat`), read when the app was first seen.
    let startTime: UInt64?
    let name: String
    let toolkit: String
    /// Peer-to-peer connection, when the app offered one and its peer pid matched.
    var peer: DBusConnection? { peerState.withLock { $0.connection } }
    /// atk-bridge apps answer `Cache.GetItems` with the whole tree and implement Collection.
    let hasFullCache: Bool

    struct Health {
        var hung = false
        var pinging = false
    }
    let health = Mutex(Health())

    /// The peer-to-peer connection and, when setting it up failed for a reason that may pass
    /// (the app was too busy to answer in time), when to try again.
    struct PeerState {
        var connection: DBusConnection?
        var retryAt: UInt64?
        var retrying = false
        var closed = false
    }
    private let peerState: Mutex<PeerState>

    /// How long after a failed peer-to-peer set-up the next request may try again.
    static let peerRetryDelayNanoseconds: UInt64 = 5_000_000_000

    init(id: String, rootPath: String, pid: Int32, exe: String?, startTime: UInt64?, name: String, toolkit: String,
         peer: DBusConnection?, hasFullCache: Bool)
    {
        self.id = id
        self.rootPath = rootPath
        self.pid = pid
        self.exe = exe
        self.startTime = startTime
        self.name = name
        self.toolkit = toolkit
        peerState = Mutex(PeerState(connection: peer))
        self.hasFullCache = hasFullCache
    }

    var isHung: Bool { health.withLock { $0.hung } }

    /// Who the app is, for the broker: from the bus and /proc, as read when it was first seen.
    var target: AppTarget { AppTarget(id: id, name: name, pid: pid, exe: exe, startTime: startTime) }

    /// Schedules another peer-to-peer attempt (the first one timed out).
    func peerSetupFailed(now: UInt64) {
        peerState.withLock { $0.retryAt = now + Self.peerRetryDelayNanoseconds }
    }

    /// Whether the caller should try to set up the peer connection now; at most one caller
    /// at a time gets true, and only once the retry time has come.
    func claimPeerRetry(now: UInt64) -> Bool {
        peerState.withLock { state in
            guard !state.closed, state.connection == nil, !state.retrying, let at = state.retryAt, now >= at else {
                return false
            }
            state.retrying = true
            return true
        }
    }

    /// Ends a claimed retry. Returns false if the handle was closed meanwhile (the caller then
    /// closes `connection` itself).
    func finishPeerRetry(_ connection: DBusConnection?, retryAt: UInt64?) -> Bool {
        peerState.withLock { state in
            state.retrying = false
            guard !state.closed else { return false }
            state.connection = connection
            state.retryAt = connection == nil ? retryAt : nil
            return true
        }
    }

    /// Closes the peer connection for good (the app went away or the daemon stops).
    func closePeer() {
        let connection = peerState.withLock { state -> DBusConnection? in
            state.closed = true
            defer { state.connection = nil }
            return state.connection
        }
        connection?.close()
    }

    /// GTK4 ("GTK") and Qt expose no usable cache; atk-bridge toolkits ("gtk", Gecko, Chromium...)
    /// do.
    static func toolkitHasFullCache(_ toolkit: String) -> Bool {
        !(toolkit == "GTK" || toolkit.lowercased().hasPrefix("qt"))
    }
}
