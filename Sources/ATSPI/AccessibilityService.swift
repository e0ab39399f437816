public import Logging
import DBus
import Synchronization

/// Reads apps' accessibility trees over AT-SPI and acts on their elements.
///
/// Every method is safe to call concurrently. D-Bus traffic runs on the connections' own
/// threads; this type only awaits replies. Errors thrown are ``AccessibilityError``s, which the
/// daemon maps to wire codes in one place.
///
/// The jobs are split: ``AccessibilityBus`` finds and connects the bus and turns accessibility on,
/// ``AppRegistry`` knows the apps (and their peer-to-peer links), ``AppCalls`` routes calls and
/// maps their failures, ``HangMonitor`` pings apps that stopped answering, ``RefTable`` issues
/// refs and ``EventRouter`` delivers events. The extensions read trees (`NodeReader`,
/// `TreeWalker`, `CacheReader`), resolve targets (`Resolution`) and act (`ElementOperations`).
public final class AccessibilityService: Sendable {
    let config: AccessibilityConfig
    let logger: Logger
    let connection: AccessibilityBus
    let refs = RefTable()
    let registry: AppRegistry
    let calls: AppCalls
    let events: EventRouter

    /// The accessibility bus.
    var bus: DBusConnection { connection.bus }

    private init(config: AccessibilityConfig, logger: Logger, connection: AccessibilityBus) {
        self.config = config
        self.logger = logger
        self.connection = connection
        registry = AppRegistry(bus: connection.bus, config: config, logger: logger, refs: refs)
        calls = AppCalls(bus: connection.bus, config: config, registry: registry,
                         hangs: HangMonitor(registry: registry, logger: logger))
        events = EventRouter()
    }

    /// Connects to the accessibility bus and turns accessibility on.
    /// - Throws: ``AccessibilityError/busUnavailable(_:)`` when no accessibility bus can be reached.
    public static func start(config: AccessibilityConfig, logger: Logger) async throws(AccessibilityError)
        -> AccessibilityService
    {
        let connection = try await AccessibilityBus.connect(config: config, logger: logger)
        let service = AccessibilityService(config: config, logger: logger, connection: connection)
        service.events.attach(service: service)
        return service
    }

    /// Restores `IsEnabled`, ends event registrations and closes every connection.
    public func shutdown() async {
        await events.shutdown()
        registry.closeAll()
        await connection.close()
    }

    // MARK: - Apps

    /// Every app registered with the AT-SPI registry that `include` accepts, with its windows.
    /// Apps it refuses are never asked for anything more than who they are.
    public func listApps(where include: @Sendable (AppTarget) -> Bool = { _ in true }) async throws(AccessibilityError)
        -> [AppInfo]
    {
        let children = try await registry.children()
        let handles = await withTaskGroup(of: (Int, AppHandle?).self) { group in
            for (index, child) in children.enumerated() {
                group.addTask { (index, try? await self.registry.handle(id: child.name, rootPath: child.path)) }
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
                let pid = (try? await registry.processID(of: children[index].name)) ?? 0
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

    /// An app's listing entry with its windows.
    private func appInfo(_ handle: AppHandle) async -> AppInfo {
        var info = AppInfo(id: handle.id, name: handle.name, pid: handle.pid, exe: handle.exe,
                           toolkit: handle.toolkit, windows: [], responding: !handle.isHung)
        guard info.responding else { return info }
        do {
            let nodes = try await readNodes(handle, paths: try await childPaths(handle, of: handle.rootPath),
                                            withChildren: false)
            info.windows = nodes.map { node in
                AppInfo.WindowInfo(ref: refs.ref(app: handle.id, path: node.path, role: node.role, name: node.name),
                                   name: node.name, role: AtspiNames.role(node.role), active: node.states.isActive)
            }
        } catch {
            info.responding = !handle.isHung
        }
        return info
    }
}
