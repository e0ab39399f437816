public import Logging
import DBus
import Glibc
import Synchronization

/// Reads apps' accessibility trees over AT-SPI and acts on their elements.
///
/// Every method is safe to call concurrently. D-Bus traffic runs on the connections' own
/// threads; this type only awaits replies. Errors thrown are ``AccessibilityError``s; the daemon
/// accessibility API (-32002 app gone, -32003 element gone, -32004 not responding, -32005 not
/// supported, -32006 invalid value, -32008 bus unavailable, -32009 ambiguous).
public final class AccessibilityService: Sendable {
    let config: AccessibilityConfig
    let logger: Logger
    let bus: DBusConnection
    private let session: DBusConnection?
    private let previousIsEnabled: Bool?
    let refs = RefTable()
    private let apps = Mutex<[String: AppHandle]>([:])
    let events: EventRouter

    private init(config: AccessibilityConfig, logger: Logger, bus: DBusConnection, session: DBusConnection?,
                 previousIsEnabled: Bool?)
    {
        self.config = config
        self.logger = logger
        self.bus = bus
        self.session = session
        self.previousIsEnabled = previousIsEnabled
        self.events = EventRouter()
    }

    /// Connects to the accessibility bus and turns accessibility on.
    /// - Throws: ``AccessibilityError/busUnavailable(_:)`` when no accessibility bus can be reached.
    public static func start(config: AccessibilityConfig, logger: Logger) async throws(AccessibilityError)
        -> AccessibilityService
    {
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
        let service = AccessibilityService(config: config, logger: logger, bus: bus, session: session,
                                           previousIsEnabled: previous)
        service.events.attach(service: service)
        return service
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

    /// Restores `IsEnabled`, ends event registrations and closes every connection.
    public func shutdown() async {
        await events.shutdown()
        if let previous = previousIsEnabled, let session {
            _ = await Self.setIsEnabled(previous, session: session, logger: logger)
        }
        let handles = apps.withLock { a -> [AppHandle] in
            defer { a.removeAll() }
            return Array(a.values)
        }
        for handle in handles { handle.closePeer() }
        bus.close()
        session?.close()
    }

    // MARK: - Apps

    /// Every app registered with the AT-SPI registry that `include` accepts, with its windows.
    /// Apps it refuses are never asked for anything more than who they are.
    public func listApps(where include: @Sendable (AppTarget) -> Bool = { _ in true }) async throws(AccessibilityError)
        -> [AppInfo]
    {
        let children = try await registryChildren()
        let handles = await withTaskGroup(of: (Int, AppHandle?).self) { group in
            for (index, child) in children.enumerated() {
                group.addTask { (index, try? await self.handle(busName: child.name, rootPath: child.path)) }
            }
            var result: [(Int, AppHandle?)] = []
            for await item in group { result.append(item) }
            return result.sorted { $0.0 < $1.0 }.map(\.1)
        }
        var unanswered: [(Int, AppTarget)] = []
        var accepted: [(Int, AppHandle)] = []
        for (index, handle) in handles.enumerated() {
            if let handle {
                if include(handle.target) { accepted.append((index, handle)) }
            } else {
                // It did not answer: who it is comes from the bus and /proc alone.
                let pid = (try? await processID(of: children[index].name)) ?? 0
                let target = AppTarget(id: children[index].name, name: "", pid: pid,
                                       exe: pid > 0 ? ProcessFacts.executable(of: pid) : nil,
                                       startTime: pid > 0 ? ProcessFacts.startTime(of: pid) : nil)
                if include(target) { unanswered.append((index, target)) }
            }
        }
        let infos = await withTaskGroup(of: (Int, AppInfo).self) { group in
            for (index, handle) in accepted {
                group.addTask { (index, await self.appInfo(handle)) }
            }
            var result: [(Int, AppInfo)] = []
            for await item in group { result.append(item) }
            return result
        }
        let silent = unanswered.map { index, target in
            (index, AppInfo(id: target.id, name: "", pid: target.pid, exe: target.exe, toolkit: "", windows: [], responding: false))
        }
        return (infos + silent).sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// The handle of an app already seen, by id.
    func knownHandle(_ id: String) -> AppHandle? { apps.withLock { $0[id] } }

    func registryChildren() async throws(AccessibilityError) -> [(name: String, path: String)] {
        let reply: [DBusValue]
        do {
            reply = try await bus.call(destination: Atspi.registry, path: Atspi.rootPath, interface: Atspi.accessible,
                                       member: "GetChildren", timeout: config.smallCallTimeout)
        } catch {
            throw .busUnavailable("accessibility registry unavailable: \(error.name)")
        }
        let children = (reply.first?.arrayValue ?? []).compactMap(\.objectReference)
        let live = Set(children.map(\.name))
        let gone = apps.withLock { a -> [AppHandle] in
            let stale = a.values.filter { !live.contains($0.busName) }
            for handle in stale { a.removeValue(forKey: handle.busName) }
            return stale
        }
        for handle in gone { forget(handle) }
        return children
    }

    private func forget(_ handle: AppHandle) {
        handle.closePeer()
        refs.removeApp(handle.busName)
        apps.withLock { a in
            if a[handle.busName] === handle { a.removeValue(forKey: handle.busName) }
        }
    }

    func resolveHandle(_ idOrName: String) async throws(AccessibilityError) -> AppHandle {
        let children = try await registryChildren()
        if let child = children.first(where: { $0.name == idOrName }) {
            return try await handle(busName: child.name, rootPath: child.path)
        }
        // New apps are probed in parallel, so one frozen app costs one timeout, not one each.
        let handles = await withTaskGroup(of: AppHandle?.self) { group in
            for child in children {
                group.addTask { try? await self.handle(busName: child.name, rootPath: child.path) }
            }
            var handles: [AppHandle?] = []
            for await handle in group { handles.append(handle) }
            return handles
        }
        let unresponsive = handles.contains { $0 == nil }
        let matches = handles.compactMap { $0 }.filter { $0.name == idOrName }.sorted { $0.busName < $1.busName }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 {
            throw .ambiguousApp(idOrName, candidates: matches.map { AppCandidate(id: $0.busName, name: $0.name, pid: $0.pid, exe: $0.exe) })
        }
        throw .appNotFound(idOrName, someUnresponsive: unresponsive)
    }

    /// The cached handle of an app, creating it on first sight.
    func handle(busName: String, rootPath: String) async throws(AccessibilityError) -> AppHandle {
        if let existing = apps.withLock({ $0[busName] }) {
            if existing.claimPeerRetry(now: Deadline.now()) {
                // In the background: this request goes on over the bus rather than wait.
                Task { await self.retryPeer(existing) }
            }
            return existing
        }
        let created = try await makeHandle(busName: busName, rootPath: rootPath)
        return apps.withLock { a in
            if let raced = a[busName] {
                created.closePeer()
                return raced
            }
            a[busName] = created
            return created
        }
    }

    private func makeHandle(busName: String, rootPath: String) async throws(AccessibilityError) -> AppHandle {
        let pid = try await processID(of: busName)
        let exe = ProcessFacts.executable(of: pid)
        let startTime = ProcessFacts.startTime(of: pid)
        let small = config.smallCallTimeout
        let probe = await bus.callBatch([
            DBusCall(destination: busName, path: rootPath, interface: Atspi.properties, member: "Get",
                     args: [.string(Atspi.accessible), .string("Name")]),
            DBusCall(destination: busName, path: rootPath, interface: Atspi.properties, member: "Get",
                     args: [.string(Atspi.application), .string("ToolkitName")]),
        ], timeout: small)
        if case .failure(let error) = probe[0] {
            if error.isTimeout { throw .notResponding(app: busName, name: "") }
            if error.isPeerGone { throw .appGone(app: busName) }
        }
        let name = (try? probe[0].get())?.first?.stringValue ?? ""
        let toolkit = (try? probe[1].get())?.first?.stringValue ?? ""
        let fullCache = AppHandle.toolkitHasFullCache(toolkit)
        var attempt = PeerAttempt.unavailable
        if config.usePeerToPeer, fullCache {
            attempt = await openPeer(busName: busName, rootPath: rootPath, pid: pid)
        }
        let peer: DBusConnection? = if case .connected(let connection) = attempt { connection } else { nil }
        logger.info("app seen", metadata: ["app": "\(busName)", "pid": "\(pid)", "toolkit": "\(toolkit)",
                                           "connection": "\(peer == nil ? "bus" : "p2p")"])
        let handle = AppHandle(busName: busName, rootPath: rootPath, pid: pid, exe: exe, startTime: startTime, name: name,
                               toolkit: toolkit, peer: peer, hasFullCache: fullCache)
        if case .retryLater = attempt { handle.peerSetupFailed(now: Deadline.now()) }
        return handle
    }

    /// Tries the peer-to-peer connection again for an app that was too busy the first time
    /// (a large app answering its first `GetItems` can be busy for seconds): without this it
    /// would stay on the slower bus path for as long as it runs.
    private func retryPeer(_ handle: AppHandle) async {
        let attempt = await openPeer(busName: handle.busName, rootPath: handle.rootPath, pid: handle.pid)
        switch attempt {
        case .connected(let connection):
            if handle.finishPeerRetry(connection, retryAt: nil) {
                logger.info("peer-to-peer connection set up on retry", metadata: ["app": "\(handle.busName)"])
            } else {
                connection.close()
            }
        case .retryLater:
            _ = handle.finishPeerRetry(nil, retryAt: Deadline.now() + AppHandle.peerRetryDelayNanoseconds)
        case .unavailable:
            _ = handle.finishPeerRetry(nil, retryAt: nil)
        }
    }

    /// The result of trying to open an app's peer-to-peer connection.
    enum PeerAttempt: Sendable {
        case connected(DBusConnection)
        /// The app does not offer one, or offered an address we must not use.
        case unavailable
        /// It did not answer in time or the connection failed: worth another try later.
        case retryLater
    }

    /// A peer-to-peer connection to the app, used only if the kernel says the socket's peer is
    /// the process the bus says owns the app (an app could otherwise point us at another app).
    private func openPeer(busName: String, rootPath: String, pid: Int32) async -> PeerAttempt {
        let address: String
        do {
            let reply = try await bus.call(destination: busName, path: rootPath, interface: Atspi.application,
                                           member: "GetApplicationBusAddress", timeout: config.smallCallTimeout)
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

    func processID(of busName: String) async throws(AccessibilityError) -> Int32 {
        let reply: [DBusValue]
        do {
            reply = try await bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                       interface: "org.freedesktop.DBus", member: "GetConnectionUnixProcessID",
                                       args: [.string(busName)], timeout: config.smallCallTimeout)
        } catch {
            throw .appGone(app: busName)
        }
        guard let pid = reply.first?.integerValue else { throw .appGone(app: busName) }
        return Int32(pid)
    }

    /// An app's listing entry with its windows.
    private func appInfo(_ handle: AppHandle) async -> AppInfo {
        var info = AppInfo(id: handle.busName, name: handle.name, pid: handle.pid, exe: handle.exe,
                           toolkit: handle.toolkit, windows: [], responding: !handle.isHung)
        guard info.responding else { return info }
        do {
            let nodes = try await readNodes(handle, paths: try await childPaths(handle, of: handle.rootPath),
                                            withChildren: false)
            info.windows = nodes.map { node in
                AppInfo.WindowInfo(ref: refs.ref(app: handle.busName, path: node.path, role: node.role, name: node.name),
                                   name: node.name, role: AtspiNames.role(node.role), active: node.states.isActive)
            }
        } catch {
            info.responding = !handle.isHung
        }
        return info
    }

    // MARK: - Calls to apps

    /// Calls a method of an app's object, mapping failures to the API's errors and keeping the
    /// app's hung state.
    func call(_ app: AppHandle, _ path: String, _ interface: String, _ member: String, _ args: [DBusValue] = [],
              timeout: Duration) async throws(AccessibilityError) -> [DBusValue]
    {
        try failFastIfHung(app)
        do {
            if let peer = app.peer, peer.isConnected {
                return try await peer.call(destination: nil, path: path, interface: interface, member: member,
                                           args: args, timeout: timeout)
            }
            return try await bus.call(destination: app.busName, path: path, interface: interface, member: member,
                                      args: args, timeout: timeout)
        } catch {
            throw await mapError(error, app: app, interface: interface)
        }
    }

    /// Like ``call(_:_:_:_:_:timeout:)``, decoding the reply on the connection's thread.
    func callDecoding<T: Sendable>(_ app: AppHandle, _ path: String, _ interface: String, _ member: String,
                                   _ args: [DBusValue] = [], timeout: Duration, deadline: Deadline? = nil,
                                   decode: @escaping @Sendable (inout DBusReader) -> T) async throws(AccessibilityError) -> T
    {
        try failFastIfHung(app)
        do {
            if let peer = app.peer, peer.isConnected {
                return try await peer.call(destination: nil, path: path, interface: interface, member: member,
                                           args: args, timeout: timeout, decode: decode)
            }
            return try await bus.call(destination: app.busName, path: path, interface: interface, member: member,
                                      args: args, timeout: timeout, decode: decode)
        } catch {
            throw await mapError(error, app: app, interface: interface, deadline: deadline)
        }
    }

    /// Reads a property with `Properties.Get` (never `GetAll`: Qt crashes on it).
    func property(_ app: AppHandle, _ path: String, _ interface: String, _ name: String,
                  timeout: Duration? = nil) async throws(AccessibilityError) -> DBusValue
    {
        let reply = try await call(app, path, Atspi.properties, "Get", [.string(interface), .string(name)],
                                   timeout: timeout ?? config.smallCallTimeout)
        guard let value = reply.first else { throw .unexpected("empty property reply") }
        return value.unwrapped
    }

    /// Sends calls to one app at once. A timeout marks the app hung and fails the whole batch
    /// (-32004); an app that has gone fails it with -32002; other per-call errors are returned.
    func batch(_ app: AppHandle, _ calls: [(path: String, interface: String, member: String, args: [DBusValue])],
               timeout: Duration, deadline: Deadline? = nil) async throws(AccessibilityError) -> [Result<[DBusValue], DBusError>]
    {
        // In chunks: an app answers one call after another, so a per-call timeout only means
        // something if the calls ahead of it in the queue can be answered within it.
        var results: [Result<[DBusValue], DBusError>] = []
        results.reserveCapacity(calls.count)
        var start = 0
        while start < calls.count {
            try failFastIfHung(app)
            let chunk = calls[start..<min(start + Self.batchChunk, calls.count)]
            let chunkResults: [Result<[DBusValue], DBusError>]
            if let peer = app.peer, peer.isConnected {
                chunkResults = await peer.callBatch(chunk.map {
                    DBusCall(destination: nil, path: $0.path, interface: $0.interface, member: $0.member, args: $0.args)
                }, timeout: timeout)
            } else {
                chunkResults = await bus.callBatch(chunk.map {
                    DBusCall(destination: app.busName, path: $0.path, interface: $0.interface, member: $0.member,
                             args: $0.args)
                }, timeout: timeout)
            }
            for result in chunkResults {
                if case .failure(let error) = result, error.isTimeout || error.isPeerGone {
                    throw await mapError(error, app: app, interface: "", deadline: deadline)
                }
            }
            results += chunkResults
            start += Self.batchChunk
        }
        return results
    }

    /// Calls in flight per app at once.
    static let batchChunk = 512

    private func failFastIfHung(_ app: AppHandle) throws(AccessibilityError) {
        if app.isHung { throw .notResponding(app: app.busName, name: app.name) }
    }

    func mapError(_ error: DBusError, app: AppHandle, interface: String, deadline: Deadline? = nil) async -> AccessibilityError {
        // A call cut short by the request's own deadline says nothing about the app.
        if error.isTimeout, let deadline, deadline.hasPassed { return .deadlineReached }
        if error.isTimeout {
            markHung(app)
            return .notResponding(app: app.busName, name: app.name)
        }
        if error.isPeerGone || error.name == DBusError.cancelledName {
            if error.isPeerGone, await !nameHasOwner(app.busName) {
                forget(app)
                return .appGone(app: app.busName)
            }
            if error.isPeerGone { return .appGone(app: app.busName) }
            return .cancelled
        }
        if Self.isGoneObjectError(error) { return .elementGone("element no longer exists") }
        if error.name == DBusError.unknownMethodName || error.name == DBusError.unknownInterfaceName
            || error.message.contains("No such interface") || error.name == DBusError.unknownPropertyName
        {
            return .notSupported("the element does not support \(interface.isEmpty ? "this" : interface)")
        }
        return .unexpected("app returned \(error.name)", dbusError: error.name)
    }

    static func isGoneObjectError(_ error: DBusError) -> Bool {
        if error.name == DBusError.unknownObjectName { return true }
        let message = error.message
        return message.contains("does not exist") || message.contains("No such object")
            || message.contains("No such interface \u{201C}org.a11y.atspi.Accessible\u{201D}")
            || message.contains("No such interface 'org.a11y.atspi.Accessible'")
            || message.contains("No such interface \"org.a11y.atspi.Accessible\"")
    }

    private func nameHasOwner(_ name: String) async -> Bool {
        do {
            let reply = try await bus.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                           interface: "org.freedesktop.DBus", member: "NameHasOwner",
                                           args: [.string(name)], timeout: .seconds(1))
            return reply.first?.boolValue ?? false
        } catch {
            return true
        }
    }

    /// Marks an app hung and pings it until it answers (then it is served again) or leaves.
    private func markHung(_ app: AppHandle) {
        let startPing = app.health.withLock { h -> Bool in
            h.hung = true
            if h.pinging { return false }
            h.pinging = true
            return true
        }
        guard startPing else { return }
        logger.notice("app not responding; pinging", metadata: ["app": "\(app.busName)", "pid": "\(app.pid)"])
        let bus = self.bus
        Task { [weak self] in
            while true {
                do throws(DBusError) {
                    _ = try await bus.call(destination: app.busName, path: "/", interface: "org.freedesktop.DBus.Peer",
                                           member: "Ping", timeout: .seconds(30))
                    app.health.withLock { $0 = AppHandle.Health() }
                    self?.logger.notice("app responds again", metadata: ["app": "\(app.busName)"])
                    return
                } catch {
                    if error.isPeerGone || error.name == DBusError.disconnectedName {
                        app.health.withLock { $0.pinging = false }
                        self?.forget(app)
                        return
                    }
                    if self == nil { return }
                }
            }
        }
    }
}
