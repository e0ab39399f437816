import DBus
import Synchronization

/// A registered application and how to talk to it.
final class AppHandle: Sendable {
    /// Unique name on the accessibility bus; also the app's public id.
    let busName: String
    let rootPath: String
    let pid: Int32
    let exe: String?
    let name: String
    let toolkit: String
    /// Peer-to-peer connection, when the app offered one and its peer pid matched.
    let peer: DBusConnection?
    /// atk-bridge apps answer `Cache.GetItems` with the whole tree and implement Collection.
    let hasFullCache: Bool

    struct Health {
        var hung = false
        var pinging = false
    }
    let health = Mutex(Health())

    init(busName: String, rootPath: String, pid: Int32, exe: String?, name: String, toolkit: String,
         peer: DBusConnection?, hasFullCache: Bool)
    {
        self.busName = busName
        self.rootPath = rootPath
        self.pid = pid
        self.exe = exe
        self.name = name
        self.toolkit = toolkit
        self.peer = peer
        self.hasFullCache = hasFullCache
    }

    var isHung: Bool { health.withLock { $0.hung } }

    /// GTK4 ("GTK") and Qt expose no usable cache; atk-bridge toolkits ("gtk", Gecko, Chromium...)
    /// do.
    static func toolkitHasFullCache(_ toolkit: String) -> Bool {
        !(toolkit == "GTK" || toolkit.lowercased().hasPrefix("qt"))
    }
}
