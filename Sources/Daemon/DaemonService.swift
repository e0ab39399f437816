#if canImport(Glibc)
import Glibc
#endif
public import ATSPI
import Audit
import Broker
import CLinux
import Dispatch
import DeskgateAPI
import JSONRPC
public import Logging
import NIOCore
import NIOPosix
import Synchronization

/// How the daemon is configured (from flags, environment and defaults).
public struct DaemonOptions: Sendable {
    /// Socket path; nil means the XDG default (or the socket systemd passes).
    public var socketPath: String?
    public var stateDirectory: String
    public var configDirectory: String
    public var systemPolicyDirectory: String
    public var limits = ConnectionLimits()
    /// How long graceful shutdown waits for in-flight requests.
    public var shutdownGrace: Duration = .seconds(5)
    /// Test seam: identify peers with `pidfd_open` even where `SO_PEERPIDFD` exists.
    public var forcePidfdOpen = false
    /// Test seam: serve `debug.*` methods.
    public var enableTestMethods = false
    /// Turn on memory-deny-write-execute for this process (PR_SET_MDWE) before serving.
    public var memoryDenyWriteExecute = false
    /// AT-SPI timeouts and bus address.
    public var accessibility = AccessibilityConfig()
    /// Executables allowed to register as prompt helpers when no policy sets `prompt_agents`
    /// (default: the `deskgate-prompt` installed next to `deskgated`).
    public var defaultPromptHelpers: [String] = []
    /// How long a prompt may stay unanswered.
    public var promptTimeout: Duration = .seconds(60)

    public init(environment: [String: String]) {
        stateDirectory = DeskgatePaths.stateDirectory(environment: environment)
        configDirectory = DeskgatePaths.configDirectory(environment: environment)
        systemPolicyDirectory = DeskgatePaths.systemPolicyDirectory
    }
}

/// The long-running daemon. Its lifecycle is a ``LifecycleStateMachine``: ``run()`` starts it
/// once, serves until SIGTERM or SIGINT, reloads policies on SIGHUP, and shuts down gracefully in
/// a fixed order (see ``shutDown(_:signals:)``). Signals are handled from the first moment of
/// ``run()``, so a request during start-up is remembered rather than fatal.
public final class DaemonService: Sendable {
    private let options: DaemonOptions
    private let logger: Logger
    private let lifecycle = Mutex(LifecycleStateMachine())
    /// The stop request that ends serving (sent once, when the machine says `beginShutdown`).
    private let stopRequests = AsyncStream<Void>.makeStream()
    /// A second stop request while stopping: no more waiting for in-flight requests.
    private let graceCuts = AsyncStream<Void>.makeStream()
    /// Reloads the policies; set once the broker exists, before the daemon runs.
    private let reloader = Mutex<(@Sendable (_ reason: String) -> Void)?>(nil)
    private let group: MultiThreadedEventLoopGroup

    public init(options: DaemonOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        // Sockets get loops of their own; tasks run on the singleton group (``GlobalExecutor``).
        // Sharing the loops saved two idle threads but put each request's task on the thread
        // doing its connection's I/O: fewer task-served requests per second, worse p99.
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
    }

    /// Where the daemon is in its lifecycle.
    public var phase: LifecycleStateMachine.Phase { lifecycle.withLock { $0.phase } }

    private func logPhase() {
        logger.debug("daemon state", metadata: ["state": "\(phase.rawValue)"])
    }

    /// What start-up built, for serving and for the shutdown sequence.
    private struct Parts {
        let server: SocketServer
        let accessibility: AccessibilityProvider
        let broker: Broker
        let audit: AuditLog?
        let socketPath: String
        let lockMonitor: Task<SessionLockMonitor?, Never>
    }

    /// Runs until SIGTERM or SIGINT; returns once the daemon has stopped. Call once.
    /// - Throws: ``ListenError`` when start-up fails (the socket, memory-deny-write-execute).
    public func run() async throws {
        guard case .start = lifecycle.withLock({ $0.start() }) else {
            preconditionFailure("DaemonService.run() called twice")
        }
        // Signals first: from here on SIGTERM, SIGINT and SIGHUP are requests to the state
        // machine, not their default action (death, leaving the socket file behind).
        let signals = await SignalSources.install([SIGTERM, SIGINT, SIGHUP], label: "deskgate.signals") { [self] in
            handle(signal: $0)
        }
        defer { signals.cancel() }
        logPhase()

        let parts: Parts
        do {
            parts = try await startUp()
        } catch {
            lifecycle.withLock { $0.startupFailed() }
            logPhase()
            await signals.drain()
            try? await group.shutdownGracefully()
            lifecycle.withLock { $0.shutdownFinished() }
            logPhase()
            throw error
        }

        switch lifecycle.withLock({ $0.startupFinished() }) {
        case .serve(let reloadFirst):
            logPhase()
            if reloadFirst { reloader.withLock { $0 }?("SIGHUP during start-up") }
            Systemd.notify("READY=1\nSTATUS=serving \(parts.socketPath)")
            let watchdog = startWatchdog()
            for await _ in stopRequests.stream { break }
            watchdog?.cancel()
        case .stop:
            logger.info("stop requested during start-up: stopping without serving")
        }
        logPhase()
        await shutDown(parts, signals: signals)
        lifecycle.withLock { $0.shutdownFinished() }
        logPhase()
        logger.info("stopped")
    }

    /// A signal, on the signal queue: the state machine decides what it means now.
    private func handle(signal sig: Int32) {
        if sig == SIGHUP {
            switch lifecycle.withLock({ $0.reloadRequested() }) {
            case .reload: reloader.withLock { $0 }?("SIGHUP")
            case .reloadOnceStarted: logger.info("reload requested during start-up: reloading once started")
            case .ignore: logger.info("reload ignored", metadata: ["state": "\(phase.rawValue)"])
            }
            return
        }
        logger.info("received signal", metadata: ["signal": "\(sig == SIGTERM ? "SIGTERM" : "SIGINT")"])
        switch lifecycle.withLock({ $0.stopRequested() }) {
        case .beginShutdown: stopRequests.continuation.yield()
        case .stopOnceStarted: logger.info("stop requested during start-up: stopping once started")
        case .cutGrace:
            logger.info("stop requested again: no more waiting for in-flight requests")
            graceCuts.continuation.yield()
        case .ignore: break
        }
    }

    /// Opens the audit log, loads the policies, wires the handlers and listens. On a listen
    /// failure it closes what it opened before rethrowing.
    private func startUp() async throws -> Parts {
        signal(SIGPIPE, SIG_IGN)
        umask(0o077)
        if options.memoryDenyWriteExecute {
            // PR_MDWE_REFUSE_EXEC_GAIN: no mapping may become writable and executable from now on.
            guard deskgate_prctl_set_mdwe(1) == 0 else {
                throw ListenError.system("PR_SET_MDWE failed: \(String(cString: strerror(errno)))")
            }
            logger.info("memory-deny-write-execute enabled")
        }

        let environment = currentEnvironment()
        let listen: ListenSource
        let socketPath: String
        if let fd = Systemd.activatedSocket() {
            socketPath = options.socketPath ?? DeskgatePaths.defaultSocket(environment: environment)
            listen = .inherited(fd: fd, path: socketPath)
            logger.info("using the socket passed by systemd", metadata: ["fd": "\(fd)"])
        } else {
            socketPath = options.socketPath ?? DeskgatePaths.defaultSocket(environment: environment)
            listen = .path(socketPath)
        }

        let startedAt = ContinuousClock.now
        let serverBox = Mutex<SocketServer?>(nil)

        // Audit first: the broker's policy loads are themselves audit records.
        let audit = openAudit()
        // Streams learn from the broker when decisions may have changed, and ask it per app.
        let streamsBox = Mutex<EventStreams?>(nil)
        let broker = makeBroker(audit: audit, decisionsChanged: { streamsBox.withLock { $0 }?.refresh() })
        let streams = EventStreams(broker: broker)
        streamsBox.withLock { $0 = streams }
        let policy = broker.reload()
        logger.info("policies loaded", metadata: ["status": "\(policy)"])
        applyAuditRetention(audit, broker: broker, status: policy)
        reloader.withLock {
            $0 = { [self] reason in
                let status = broker.reload()
                logger.info("policies reloaded (\(reason))", metadata: ["status": "\(status)"])
                applyAuditRetention(audit, broker: broker, status: status)
            }
        }
        var accessibilityConfig = options.accessibility
        accessibilityConfig.sleep = GlobalExecutor.sleep(for:)  // not Task.sleep: see GlobalExecutor
        let accessibility = AccessibilityProvider(config: accessibilityConfig, logger: logger)

        let facts = DaemonFacts(
            version: DeskgateAPI.version, pid: getpid(), socket: socketPath, startedAt: startedAt,
            clients: { serverBox.withLock { $0?.clientCount ?? 0 } },
            extra: {
                var extra: JSONObject = ["broker": broker.status]
                extra["audit"] = audit?.health.json ?? ["writable": false, "error": "the audit log could not be opened; gated requests are refused"]
                extra["accessibility"] = await accessibility.status
                return extra
            })

        var table = MethodTable()
        let tableBox = Mutex<MethodTable?>(nil)
        CoreHandlers.register(into: &table, facts: facts) {
            OpenRPC.document(methods: tableBox.withLock { $0?.descriptors ?? [] }, version: DeskgateAPI.version)
        }
        AccessibilityHandlers.register(into: &table, source: accessibility, broker: broker, streams: streams)
        DoctorHandlers.register(into: &table, source: accessibility, broker: broker)
        BrokerHandlers.register(into: &table, broker: broker, audit: audit, resolveTarget: { method, params, context in
            guard let entry = tableBox.withLock({ $0?.entry(method) }), let resolve = entry.resolve else { return nil }
            return try await resolve(try entry.decode(params), context)
        }, liveExecutables: {
            // Asks each app nothing beyond who it is (the registry's own facts).
            let seen = Mutex<Set<String>>([])
            _ = try await accessibility.get().listApps { app in
                if let exe = app.exe { seen.withLock { _ = $0.insert(exe) } }
                return false
            }
            return seen.withLock { $0 }
        }, logger: logger)
        if let audit { AuditHandlers.register(into: &table, audit: audit) }
        if options.enableTestMethods { CoreHandlers.registerTestMethods(into: &table) }
        let finalTable = table
        tableBox.withLock { $0 = finalTable }

        let gate: any RequestGate = audit.map { AuditedBrokerGate(broker: broker, audit: $0, logger: logger) } ?? AuditUnavailableGate()
        let dispatcher = Dispatcher(table: finalTable, gate: gate, logger: logger)
        var hooks = ServerHooks()
        hooks.peerRefused = { uid, pid, reason in
            Task {
                await BrokerHandlers.recordBestEffort(audit, self.logger, AuditEntry(
                    kind: "peer_refused", client: ["uid": .int(Int64(uid)), "pid": .int(Int64(pid))], details: ["reason": .string(reason)]))
            }
        }
        // The helper hears how many clients are connected (its Pause button shows while any are).
        let connected = Mutex(0)
        hooks.sessionOpened = { session in
            let id = session.id
            broker.clientsChanged(total: connected.withLock { $0 += 1; return $0 })
            session.onClose {
                broker.connectionClosed(id)
                broker.clientsChanged(total: connected.withLock { $0 -= 1; return $0 })
            }
        }
        let server = SocketServer(group: group, limits: options.limits, dispatcher: dispatcher, hooks: hooks,
                                  forcePidfdOpen: options.forcePidfdOpen, logger: logger)
        serverBox.withLock { $0 = server }
        do {
            try await server.start(listen)
        } catch {
            await audit?.close()
            throw error
        }
        logger.info("listening", metadata: ["socket": "\(socketPath)", "pid": "\(getpid())"])
        // Bring the accessibility bus up early so toolkits expose their trees (IsEnabled).
        Task { _ = try? await accessibility.get() }
        // Act and write pause while the session's screen is locked (policy when_locked).
        let lockMonitor = Task { [logger] in await SessionLockMonitor.start(broker: broker, logger: logger) }
        return Parts(server: server, accessibility: accessibility, broker: broker, audit: audit, socketPath: socketPath,
                     lockMonitor: lockMonitor)
    }

    /// The shutdown sequence, in this order (docs/architecture.md, "Concurrency"):
    /// 1. tell systemd (`STOPPING=1`) and wait out a SIGHUP reload already running (the state
    ///    machine starts no new one);
    /// 2. the socket: stop accepting, remove the socket file the daemon created, wait up to the
    ///    grace for in-flight requests (a second SIGTERM/SIGINT ends the wait), close connections;
    /// 3. the accessibility provider (restores `IsEnabled`, closes its bus connections);
    /// 4. the broker's pending grant writes;
    /// 5. the audit log (its last group commit is made durable);
    /// 6. the server's event loops.
    private func shutDown(_ parts: Parts, signals: SignalSources) async {
        Systemd.notify("STOPPING=1")
        logger.info("stopping", metadata: ["grace": "\(options.shutdownGrace)"])
        await signals.drain()
        reloader.withLock { $0 = nil }
        let grace = options.shutdownGrace
        let cuts = graceCuts.stream
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await parts.server.shutdown(grace: grace) }
            // Ends on a cut (cancelling the grace wait above) or when cancelled after the shutdown.
            tasks.addTask { for await _ in cuts { return } }
            await tasks.next()
            tasks.cancelAll()
        }
        await parts.accessibility.shutdown()
        await parts.lockMonitor.value?.close()
        await parts.broker.flush()
        await parts.audit?.close()
        try? await group.shutdownGracefully()
    }

    /// Pings the watchdog at half its interval from an event loop, so a wedged loop stops the pings.
    private func startWatchdog() -> RepeatedTask? {
        guard let interval = Systemd.watchdogInterval() else { return nil }
        let period = TimeAmount.nanoseconds(Int64(interval.components.seconds) * 1_000_000_000 / 2 + interval.components.attoseconds / 2_000_000_000)
        logger.info("watchdog enabled", metadata: ["interval": "\(interval)"])
        Systemd.notify("WATCHDOG=1")
        return group.next().scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            Systemd.notify("WATCHDOG=1")
        }
    }

    /// Opens the audit log under the state directory. Returns nil (gated requests then fail with
    /// -32007) when it cannot be opened, rather than refusing to start: revoking grants and
    /// reading status must keep working. Nothing is pruned until the policy's retention is
    /// applied (``applyAuditRetention(_:broker:status:)``).
    private func openAudit() -> AuditLog? {
        var config = AuditConfig(directory: options.stateDirectory + "/audit")
        config.deferRetention = true
        do {
            let log = try AuditLog.open(config: config, logger: logger)
            if let bad = log.health.firstBadSeq {
                logger.critical("audit chain integrity break", metadata: ["first_bad_seq": "\(bad)"])
            }
            return log
        } catch {
            logger.critical("cannot open the audit log; gated requests will be refused", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func makeBroker(audit: AuditLog?, decisionsChanged: @escaping @Sendable () -> Void) -> Broker {
        var agents = options.defaultPromptHelpers
        if agents.isEmpty, let exe = ProcessInspection.readLink("/proc/self/exe") {
            agents = [String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/deskgate-prompt"]
        }
        var config = BrokerConfig(systemPolicyDir: options.systemPolicyDirectory,
                                  userPolicyFile: options.configDirectory + "/policy.toml",
                                  grantsFile: options.stateDirectory + "/grants.json", defaultPromptHelpers: agents)
        config.promptTimeout = options.promptTimeout
        config.sleep = GlobalExecutor.sleep(for:)  // not Task.sleep: see GlobalExecutor
        let logger = self.logger
        return Broker(config: config, inspector: ProcfsInspector(), events: { event in
            if case .decisionsChanged = event { decisionsChanged() }
            guard let entry = BrokerAuditEvents.entry(for: event) else { return }
            Task { await BrokerHandlers.recordBestEffort(audit, logger, entry) }
        }, logger: logger)
    }

    /// Puts the policy's effective `[audit]` retention (admin minimums win) in force on the open
    /// log. While an admin or user policy file is rejected the retention it sets is unknown, so
    /// pruning is held (records deleted on a guess cannot be brought back) until it loads.
    private func applyAuditRetention(_ audit: AuditLog?, broker: Broker, status: PolicyStatus) {
        guard let audit else { return }
        let rejected = status.files.filter { $0.error != nil && $0.layer != .grants }
        if !rejected.isEmpty {
            let files = rejected.map { "\($0.layer.rawValue) \($0.path)" }.joined(separator: ", ")
            let reason = "policy files rejected (\(files)); nothing is pruned until they load"
            logger.warning("audit retention held", metadata: ["reason": "\(reason)"])
            audit.holdRetention(reason: reason)
            return
        }
        let settings = broker.auditSettings
        audit.applyRetention(AuditRetention(days: settings.retentionDays, maxBytes: settings.maxBytes.map { Int($0) }))
        logger.info("audit retention in force", metadata: [
            "retention_days": "\(settings.retentionDays)", "max_bytes": "\(settings.maxBytes.map { String($0) } ?? "none")",
        ])
    }
}
