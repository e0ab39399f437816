#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Dispatch
public import DeskgateAPI
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

    public init(environment: [String: String]) {
        stateDirectory = DeskgatePaths.stateDirectory(environment: environment)
        configDirectory = DeskgatePaths.configDirectory(environment: environment)
        systemPolicyDirectory = DeskgatePaths.systemPolicyDirectory
    }
}

/// The long-running daemon: explicit states, started once, stopped gracefully on SIGTERM/SIGINT.
public final class DaemonService: Sendable {
    public enum State: String, Sendable { case initial, starting, running, stopping, stopped }

    private let options: DaemonOptions
    private let logger: Logger
    private let stateBox = Mutex(State.initial)
    private let stopSignal = AsyncStream<Void>.makeStream()
    private let group: MultiThreadedEventLoopGroup

    public init(options: DaemonOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
    }

    public var state: State { stateBox.withLock { $0 } }

    private func transition(to new: State) {
        stateBox.withLock { $0 = new }
        logger.debug("daemon state", metadata: ["state": "\(new.rawValue)"])
    }

    /// Asks a running daemon to stop (as SIGTERM does).
    public func requestStop() { stopSignal.continuation.yield() }

    /// Runs until SIGTERM/SIGINT or ``requestStop()``.
    public func run() async throws {
        transition(to: .starting)
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
        let facts = DaemonFacts(
            version: DeskgateAPI.version, pid: getpid(), socket: socketPath, startedAt: startedAt,
            clients: { serverBox.withLock { $0?.clientCount ?? 0 } },
            extra: { [:] })

        var table = MethodTable()
        let tableBox = Mutex<MethodTable?>(nil)
        CoreHandlers.register(into: &table, facts: facts) {
            OpenRPC.document(methods: tableBox.withLock { $0?.descriptors ?? [] }, version: DeskgateAPI.version)
        }
        if options.enableTestMethods { CoreHandlers.registerTestMethods(into: &table) }
        let finalTable = table
        tableBox.withLock { $0 = finalTable }

        let dispatcher = Dispatcher(table: finalTable, gate: DenyAllGate(), logger: logger)
        let server = SocketServer(group: group, limits: options.limits, dispatcher: dispatcher,
                                  forcePidfdOpen: options.forcePidfdOpen, logger: logger)
        serverBox.withLock { $0 = server }
        try await server.start(listen)
        logger.info("listening", metadata: ["socket": "\(socketPath)", "pid": "\(getpid())"])

        transition(to: .running)
        Systemd.notify("READY=1\nSTATUS=serving \(socketPath)")
        let watchdog = startWatchdog()

        let signals = installSignalHandlers()
        for await _ in stopSignal.stream { break }
        signals.forEach { $0.cancel() }

        transition(to: .stopping)
        Systemd.notify("STOPPING=1")
        watchdog?.cancel()
        logger.info("stopping", metadata: ["grace": "\(options.shutdownGrace)"])
        await server.shutdown(grace: options.shutdownGrace)
        try? await group.shutdownGracefully()
        transition(to: .stopped)
        logger.info("stopped")
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

    private func installSignalHandlers() -> [any DispatchSourceSignal] {
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [stopSignal, logger] in
                logger.info("received signal", metadata: ["signal": "\(sig == SIGTERM ? "SIGTERM" : "SIGINT")"])
                stopSignal.continuation.yield()
            }
            source.resume()
            sources.append(source)
        }
        return sources
    }
}
