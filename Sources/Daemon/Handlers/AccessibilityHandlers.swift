import ATSPI
import Broker
import DeskgateAPI
import JSONRPC
import Logging
import Synchronization

/// Connects to the accessibility bus on first need and again after a failure, so a daemon
/// started before the desktop session's bus still serves AT-SPI once the bus exists.
actor AccessibilityProvider {
    private let config: AccessibilityConfig
    private let logger: Logger
    private var service: AccessibilityService?
    private var lastFailure: (error: RPCError, at: ContinuousClock.Instant)?
    private var connecting: Task<AccessibilityService, any Error>?

    init(config: AccessibilityConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// The connected service, or -32008 while the accessibility bus is unavailable.
    func get() async throws -> AccessibilityService {
        if let service { return service }
        if let lastFailure, ContinuousClock.now - lastFailure.at < .seconds(1) { throw lastFailure.error }
        if connecting == nil {
            let config = self.config
            let logger = self.logger
            connecting = Task { try await AccessibilityService.start(config: config, logger: logger) }
        }
        do {
            let started = try await connecting!.value
            service = started
            connecting = nil
            lastFailure = nil
            return started
        } catch {
            connecting = nil
            let rpc = (error as? any RPCErrorConvertible)?.rpcError
                ?? RPCError(.busUnavailable, "accessibility bus unavailable: \(error)")
            lastFailure = (rpc, ContinuousClock.now)
            throw rpc
        }
    }

    var status: JSONValue {
        if service != nil { return ["connected": true] }
        if let lastFailure { return ["connected": false, "error": .string(lastFailure.error.message)] }
        return ["connected": false]
    }

    func shutdown() async {
        await service?.shutdown()
        service = nil
    }
}

/// The AT-SPI methods: thin adapters from validated params to ``AccessibilityService``, each
/// with a target resolver so the broker sees the app and element before anything is touched.
enum AccessibilityHandlers {
    static func register(into table: inout MethodTable, provider: AccessibilityProvider, broker: Broker?) {
        let appTarget: TargetResolver = { params, _ in
            // Identity only: reading the app's windows (resolveApp) would cost round trips to
            // the app before the broker has even decided.
            let app = try await provider.get().appIdentity(try params.string("app"))
            return RequestTarget(appName: app.name, appExe: app.exe, appPid: app.pid)
        }
        let refTarget: TargetResolver = { params, _ in
            try await elementTarget(provider, ref: try params.string("ref"))
        }

        table.register(AppsList.self) { _, context in
            let apps = try await provider.get().listApps()
            let client = AuditedBrokerGate.clientIdentity(context.session)
            let visible = apps.filter { app in
                broker?.mayList(client: client, app: TargetInfo(appName: app.name, appExe: app.exe, appPid: app.pid)) ?? false
            }
            return .array(visible.map(\.json))
        }

        table.register(TreeSnapshot.self, target: { params, context in
            if let root = try params.optionalString("root") { return try await elementTarget(provider, ref: root) }
            return try await appTarget(params, context)
        }, encodedHandler: { params, _ in
            let service = try await provider.get()
            let filter = SnapshotFilter(rawValue: try params.optionalString("filter") ?? "all") ?? .all
            let format = SnapshotFormat(rawValue: try params.optionalString("format") ?? "json") ?? .json
            let include = try SnapshotIncludes(names: try params.stringArray("include") ?? [])
            let result = try await service.snapshotResult(app: try params.string("app"),
                                                          root: try params.optionalString("root"),
                                                          maxDepth: try params.optionalInt("max_depth"),
                                                          maxNodes: try params.int("max_nodes", default: 5000),
                                                          filter: filter, format: format, include: include)
            // Thousands of nodes: written straight into the reply, no JSONValue tree.
            var writer = JSONWriter(capacity: result.estimatedSize)
            result.write(into: &writer)
            return EncodedJSON(writer)
        })

        table.register(ElementsFind.self, target: appTarget) { params, _ in
            try await provider.get().find(app: try params.string("app"), role: try params.optionalString("role"),
                                          name: try params.optionalString("name"),
                                          nameContains: try params.optionalString("name_contains"),
                                          states: try params.stringArray("states") ?? [],
                                          limit: try params.int("limit", default: 100))
        }

        table.register(ElementGet.self, target: refTarget) { params, _ in
            try await provider.get().get(ref: try params.string("ref"))
        }
        table.register(TextRead.self, target: refTarget) { params, _ in
            try await provider.get().readText(ref: try params.string("ref"))
        }
        table.register(ElementActivate.self, target: refTarget) { params, _ in
            try await provider.get().activate(ref: try params.string("ref"), action: try params.optionalString("action"))
        }
        table.register(ElementFocus.self, target: refTarget) { params, _ in
            try await provider.get().focus(ref: try params.string("ref"))
        }
        table.register(TextSet.self, target: refTarget) { params, _ in
            try await provider.get().setText(ref: try params.string("ref"), value: try params.string("value"))
        }
        table.register(ValueSet.self, target: refTarget) { params, _ in
            try await provider.get().setValue(ref: try params.string("ref"), value: try params.double("value"))
        }
        table.register(FieldFill.self, target: { params, context in
            var target = try await appTarget(params, context)
            // The field is named by its label; its role is only known once it is found.
            target?.name = try params.string("field")
            return target
        }) { params, _ in
            try await provider.get().fillField(app: try params.string("app"), field: try params.string("field"),
                                               value: try params.string("value"))
        }

        table.register(EventsSubscribe.self) { params, context in
            let service = try await provider.get()
            let types = Set(try params.stringArray("events") ?? [])
            let session = context.session
            let client = AuditedBrokerGate.clientIdentity(session)
            // Events are filtered per app like apps.list: a client sees only apps it may observe.
            let (stream, continuation) = AsyncStream.makeStream(of: JSONValue.self, bufferingPolicy: .bufferingNewest(1024))
            let id = try await service.subscribe(types) { event in continuation.yield(event) }
            let forwarder = Task {
                var visibility: [String: Bool] = [:]
                for await event in stream {
                    guard let appID = event["app"]?.stringValue else { continue }
                    if visibility[appID] == nil {
                        let app = try? await service.resolveApp(appID)
                        visibility[appID] = app.map {
                            broker?.mayList(client: client, app: TargetInfo(appName: $0.name, appExe: $0.exe, appPid: $0.pid)) ?? false
                        } ?? false
                    }
                    if visibility[appID] == true { session.notify(ServerMessages.event, event) }
                }
            }
            session.onClose {
                continuation.finish()
                forwarder.cancel()
                Task { await service.unsubscribe(id) }
            }
            return ["events": JSONValue(types.sorted())]
        }
    }

    static func elementTarget(_ provider: AccessibilityProvider, ref: String) async throws -> RequestTarget {
        let element = try await provider.get().elementTarget(ref: ref)
        return RequestTarget(appName: element.appName, appExe: element.exe, appPid: element.pid, role: element.role,
                             name: element.label ?? element.name, ref: ref)
    }
}
