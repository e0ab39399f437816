import DBus
import Logging
import Synchronization

/// The apps on the accessibility bus the daemon has met: one ``AppHandle`` per app (its
/// identity read once from the bus and `/proc`, its peer-to-peer link), found by id or name,
/// forgotten (with its refs) when the app leaves the registry.
final class AppRegistry: Sendable {
    let bus: DBusConnection
    private let config: AccessibilityConfig
    private let logger: Logger
    private let refs: RefTable
    private let peers: PeerLinks
    private let apps = Mutex<[String: AppHandle]>([:])

    init(bus: DBusConnection, config: AccessibilityConfig, logger: Logger, refs: RefTable) {
        self.bus = bus
        self.config = config
        self.logger = logger
        self.refs = refs
        peers = PeerLinks(bus: bus, config: config, logger: logger)
    }

    /// The handle of an app already seen, by id.
    func known(_ id: String) -> AppHandle? { apps.withLock { $0[id] } }

    /// The registry's children (every registered app), forgetting apps no longer among them.
    func children() async throws(AccessibilityError) -> [(name: String, path: String)] {
        let reply: [DBusValue]
        do {
            reply = try await bus.call(destination: Atspi.registry, path: Atspi.rootPath, interface: Atspi.accessible,
                                       member: "GetChildren", timeout: config.readTimeout)
        } catch {
            throw .busUnavailable("accessibility registry unavailable: \(error.name)")
        }
        let children = (reply.first?.arrayValue ?? []).compactMap(\.objectReference)
        let live = Set(children.map(\.name))
        let gone = apps.withLock { a -> [AppHandle] in
            let stale = a.values.filter { !live.contains($0.id) }
            for handle in stale { a.removeValue(forKey: handle.id) }
            return stale
        }
        for handle in gone { forget(handle) }
        return children
    }

    /// Drops an app that has gone: its peer link and its refs.
    func forget(_ handle: AppHandle) {
        handle.closePeer()
        refs.removeApp(handle.id)
        apps.withLock { a in
            if a[handle.id] === handle { a.removeValue(forKey: handle.id) }
        }
    }

    /// The app with this id, or the only app with this name.
    func resolve(_ idOrName: String) async throws(AccessibilityError) -> AppHandle {
        let children = try await children()
        if let child = children.first(where: { $0.name == idOrName }) {
            return try await handle(id: child.name, rootPath: child.path)
        }
        // New apps are probed in parallel, so one frozen app costs one timeout, not one each.
        let handles = await withTaskGroup(of: AppHandle?.self) { group in
            for child in children {
                group.addTask { try? await self.handle(id: child.name, rootPath: child.path) }
            }
            var handles: [AppHandle?] = []
            for await handle in group { handles.append(handle) }
            return handles
        }
        let unresponsive = handles.contains { $0 == nil }
        let matches = handles.compactMap { $0 }.filter { $0.name == idOrName }.sorted { $0.id < $1.id }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 {
            throw .ambiguousApp(idOrName, candidates: matches.map {
                AppCandidate(id: $0.id, name: $0.name, pid: $0.pid, exe: $0.exe)
            })
        }
        throw .appNotFound(idOrName, someUnresponsive: unresponsive)
    }

    /// The handle of an app by id, if it is still on the bus (no registry round trip when it is
    /// known; a call to a vanished app fails as ``AccessibilityError/appGone(app:)`` anyway).
    func live(_ id: String) async throws(AccessibilityError) -> AppHandle {
        if let known = known(id) { return known }
        let children = try await children()
        guard let child = children.first(where: { $0.name == id }) else { throw .appGone(app: id) }
        return try await handle(id: child.name, rootPath: child.path)
    }

    /// The cached handle of an app, creating it on first sight.
    func handle(id busName: String, rootPath: String) async throws(AccessibilityError) -> AppHandle {
        if let existing = apps.withLock({ $0[busName] }) {
            if existing.claimPeerRetry(now: MonotonicClock.nanoseconds()) {
                // In the background: this request goes on over the bus rather than wait.
                Task { await self.peers.retry(existing) }
            }
            return existing
        }
        let created = try await makeHandle(id: busName, rootPath: rootPath)
        return apps.withLock { a in
            if let raced = a[busName] {
                created.closePeer()
                return raced
            }
            a[busName] = created
            return created
        }
    }

    private func makeHandle(id busName: String, rootPath: String) async throws(AccessibilityError) -> AppHandle {
        let pid = try await processID(of: busName)
        let exe = ProcessFacts.executable(of: pid)
        let startTime = ProcessFacts.startTime(of: pid)
        let probe = await bus.callBatch([
            DBusCall(destination: busName, path: rootPath, interface: Atspi.properties, member: "Get",
                     args: [.string(Atspi.accessible), .string("Name")]),
            DBusCall(destination: busName, path: rootPath, interface: Atspi.properties, member: "Get",
                     args: [.string(Atspi.application), .string("ToolkitName")]),
        ], timeout: config.readTimeout)
        if case .failure(let error) = probe[0] {
            if error.isTimeout { throw .notResponding(app: busName, name: "") }
            if error.isPeerGone { throw .appGone(app: busName) }
        }
        let name = (try? probe[0].get())?.first?.stringValue ?? ""
        let toolkit = (try? probe[1].get())?.first?.stringValue ?? ""
        let fullCache = AppHandle.toolkitHasFullCache(toolkit)
        var attempt = PeerLinks.Attempt.unavailable
        if config.usePeerToPeer, fullCache {
            attempt = await peers.open(id: busName, rootPath: rootPath, pid: pid)
        }
        let peer: DBusConnection? = if case .connected(let connection) = attempt { connection } else { nil }
        logger.info("app seen", metadata: ["app": "\(busName)", "pid": "\(pid)", "toolkit": "\(toolkit)",
                                           "connection": "\(peer == nil ? "bus" : "p2p")"])
        let handle = AppHandle(id: busName, rootPath: rootPath, pid: pid, exe: exe, startTime: startTime, name: name,
                               toolkit: toolkit, peer: peer, hasFullCache: fullCache)
        if case .retryLater = attempt { handle.peerSetupFailed(now: MonotonicClock.nanoseconds()) }
        return handle
    }

    /// The pid of a bus name's owner, from the bus (never from the app).
    func processID(of busName: String) async throws(AccessibilityError) -> Int32 {
        let reply: [DBusValue]
        do {
            reply = try await bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                       interface: "org.freedesktop.DBus", member: "GetConnectionUnixProcessID",
                                       args: [.string(busName)], timeout: config.readTimeout)
        } catch {
            throw .appGone(app: busName)
        }
        guard let pid = reply.first?.integerValue else { throw .appGone(app: busName) }
        return Int32(pid)
    }

    /// Whether a bus name still has an owner (true when the bus does not say).
    func nameHasOwner(_ name: String) async -> Bool {
        do {
            let reply = try await bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                           interface: "org.freedesktop.DBus", member: "NameHasOwner",
                                           args: [.string(name)], timeout: .seconds(1))
            return reply.first?.boolValue ?? false
        } catch {
            return true
        }
    }

    /// Closes every app's peer link and forgets them all (shutdown).
    func closeAll() {
        let handles = apps.withLock { a -> [AppHandle] in
            defer { a.removeAll() }
            return Array(a.values)
        }
        for handle in handles { handle.closePeer() }
    }
}

/// Peer-to-peer connections to apps that offer them (atk-bridge), used only when the kernel
/// says the socket's peer is the process the bus says owns the app.
struct PeerLinks: Sendable {
    let bus: DBusConnection
    let config: AccessibilityConfig
    let logger: Logger

    /// The result of trying to open an app's peer-to-peer connection.
    enum Attempt: Sendable {
        case connected(DBusConnection)
        /// The app does not offer one, or offered an address we must not use.
        case unavailable
        /// It did not answer in time or the connection failed: worth another try later.
        case retryLater
    }

    /// A peer-to-peer connection to the app; an app could otherwise point us at another app.
    func open(id busName: String, rootPath: String, pid: Int32) async -> Attempt {
        let address: String
        do {
            let reply = try await bus.call(destination: busName, path: rootPath, interface: Atspi.application,
                                           member: "GetApplicationBusAddress", timeout: config.readTimeout)
            guard let offered = reply.first?.stringValue, offered.hasPrefix("unix:") else { return .unavailable }
            address = offered
        } catch let error where error.isTimeout {
            return .retryLater
        } catch {
            return .unavailable
        }
        guard let connection = try? await DBusConnection.open(address: address, isBus: false, name: "a11y-p2p") else {
            return .retryLater
        }
        guard connection.peerProcessID == pid else {
            logger.warning("peer-to-peer address of an app leads to another process; not used",
                           metadata: ["app": "\(busName)", "pid": "\(pid)"])
            connection.close()
            return .unavailable
        }
        return .connected(connection)
    }

    /// Tries again for an app that was too busy the first time (a large app answering its first
    /// `GetItems` can be busy for seconds): without this it would stay on the slower bus path
    /// for as long as it runs.
    func retry(_ handle: AppHandle) async {
        switch await open(id: handle.id, rootPath: handle.rootPath, pid: handle.pid) {
        case .connected(let connection):
            if handle.finishPeerRetry(connection, retryAt: nil) {
                logger.info("peer-to-peer connection set up on retry", metadata: ["app": "\(handle.id)"])
            } else {
                connection.close()
            }
        case .retryLater:
            _ = handle.finishPeerRetry(nil, retryAt: MonotonicClock.nanoseconds() + AppHandle.peerRetryDelayNanoseconds)
        case .unavailable:
            _ = handle.finishPeerRetry(nil, retryAt: nil)
        }
    }
}
