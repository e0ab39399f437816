#if canImport(Glibc)
import Glibc
#endif
import CLinux
import DeskgateAPI
import JSONRPC
public import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Where the listening socket comes from.
public enum ListenSource: Sendable {
    /// Create (and on exit remove) a socket at this path.
    case path(String)
    /// A socket passed by systemd socket activation (fd 3); systemd owns the file.
    case inherited(fd: Int32, path: String?)
}

/// Why the daemon cannot listen.
public enum ListenError: Error, CustomStringConvertible, Sendable {
    case alreadyRunning(String)
    case unsafeDirectory(String, String)
    case notASocket(String)
    case system(String)

    public var description: String {
        switch self {
        case .alreadyRunning(let path): "another deskgated is already serving \(path); stop it first (or pass --socket to use another path)"
        case .unsafeDirectory(let path, let why): "refusing socket directory \(path): \(why)"
        case .notASocket(let path): "\(path) exists and is not a socket; refusing to replace it"
        case .system(let detail): detail
        }
    }
}

/// Hooks the server calls around connections (audit of refused peers, broker cleanup).
public struct ServerHooks: Sendable {
    public var peerRefused: @Sendable (_ uid: UInt32, _ pid: Int32, _ reason: String) -> Void = { _, _, _ in }
    public var sessionOpened: @Sendable (ClientSession) -> Void = { _ in }
    public init() {}
}

/// The Unix-socket JSON-RPC server: accepts connections, identifies peers, serves requests.
public final class SocketServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let limits: ConnectionLimits
    private let dispatcher: Dispatcher
    private let hooks: ServerHooks
    private let logger: Logger
    private let state = Mutex(State())
    /// Requests being served across all connections (graceful shutdown waits for them).
    let inFlight = Atomic<Int>(0)
    /// Bytes of unfinished lines across all connections (``ConnectionLimits/partialLineBudget``).
    let partialBytes = Atomic<Int>(0)
    /// Requests finished since the last trim check, and whether a check is scheduled.
    private let finishedRequests = Atomic<UInt64>(0)
    private let trimScheduled = Atomic<Bool>(false)
    /// Test seam: force the `pidfd_open` fallback instead of `SO_PEERPIDFD`.
    private let forcePidfdOpen: Bool

    private struct State {
        var serverChannel: (any Channel)?
        var sessions: [UInt64: ClientSession] = [:]
        var channels: [UInt64: any Channel] = [:]
        var nextSessionID: UInt64 = 1
        var createdSocketPath: String?
    }

    public init(group: MultiThreadedEventLoopGroup, limits: ConnectionLimits, dispatcher: Dispatcher,
                hooks: ServerHooks = ServerHooks(), forcePidfdOpen: Bool = false, logger: Logger)
    {
        self.group = group
        self.limits = Self.fitting(limits, logger: logger)
        self.dispatcher = dispatcher
        self.hooks = hooks
        self.forcePidfdOpen = forcePidfdOpen
        self.logger = logger
    }

    /// Number of connected, identified clients.
    public var clientCount: Int { state.withLock { $0.sessions.count } }

    /// Live sessions (for broadcasting and shutdown).
    public var sessions: [ClientSession] { state.withLock { Array($0.sessions.values) } }

    /// Starts listening. Throws ``ListenError`` with a message fit for a person.
    public func start(_ source: ListenSource) async throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: min(1 << 20, limits.maxReplyBuffer / 2), high: limits.maxReplyBuffer))
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in
                guard let provider = channel as? any SocketOptionProvider else {
                    return channel.eventLoop.makeFailedFuture(ListenError.system("socket options unavailable"))
                }
                let forcePidfdOpen = self.forcePidfdOpen
                return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
                    .flatMap { (credentials: deskgate_ucred) -> EventLoopFuture<(deskgate_ucred, CInt)> in
                        if forcePidfdOpen { return channel.eventLoop.makeSucceededFuture((credentials, -1)) }
                        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(deskgate_SO_PEERPIDFD))
                            .map { (fd: CInt) in (credentials, fd) }
                            .recover { _ in (credentials, -1) }
                    }
                    .flatMapThrowing { credentials, peerPidfd in
                        try self.accept(channel, credentials: credentials, peerPidfd: peerPidfd)
                    }
            }
        let channel: any Channel
        switch source {
        case .path(let path):
            try Self.prepareSocketPath(path)
            // The socket is created 0600 (umask 0177 during bind), never briefly wider.
            let previousUmask = umask(0o177)
            defer { umask(previousUmask) }
            do {
                channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
            } catch {
                throw ListenError.system("cannot listen on \(path): \(error)")
            }
            state.withLock { $0.createdSocketPath = path }
        case .inherited(let fd, _):
            do {
                channel = try await bootstrap.withBoundSocket(fd).get()
            } catch {
                throw ListenError.system("cannot adopt the socket passed by systemd (fd \(fd)): \(error)")
            }
        }
        state.withLock { $0.serverChannel = channel }
    }

    /// Stops accepting, waits up to `grace` for in-flight requests, then closes every connection
    /// and removes the socket file this server created. Cancelling the calling task ends the wait.
    public func shutdown(grace: Duration) async {
        let (server, path) = state.withLock { s in (s.serverChannel, s.createdSocketPath) }
        try? await server?.close()
        if let path { _ = unlink(path) }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, inFlight.load(ordering: .relaxed) > 0 {
            do { try await GlobalExecutor.sleep(for: .milliseconds(10)) } catch { break }
        }
        let channels = state.withLock { Array($0.channels.values) }
        for channel in channels { try? await channel.close() }
    }

    /// Called when a request served by a task finishes. Once the daemon has been quiet for a
    /// second after such work, free heap pages go back to the kernel (a burst of snapshots leaves
    /// megabytes freed but resident). The check is a one-shot timer while work goes on; an idle
    /// daemon has none.
    func requestFinished(on loop: any EventLoop) {
        finishedRequests.add(1, ordering: .relaxed)
        guard trimScheduled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        scheduleTrim(on: loop, seen: finishedRequests.load(ordering: .relaxed))
    }

    private func scheduleTrim(on loop: any EventLoop, seen: UInt64) {
        _ = loop.scheduleTask(in: .seconds(1)) { [self] in
            let now = finishedRequests.load(ordering: .relaxed)
            if now != seen { return scheduleTrim(on: loop, seen: now) }  // still busy: look again later
            trimScheduled.store(false, ordering: .relaxed)
            MemoryTuning.trim()
        }
    }

    /// The connection bounds made to fit the file descriptors this process may open (each
    /// connection holds its socket and the peer's pidfd): the soft limit is raised to the hard
    /// one (up to 65,536), and the bounds shrink when even that is too few, so the daemon refuses
    /// a connection with -32012 before `accept` could fail for lack of descriptors.
    static func fitting(_ limits: ConnectionLimits, logger: Logger) -> ConnectionLimits {
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return limits }
        let wanted = rlim_t(min(65_536, 2 * (limits.maxConnections + limits.reserveConnections) + 256))
        if rl.rlim_cur < wanted, rl.rlim_cur < rl.rlim_max {
            var raised = rl
            raised.rlim_cur = min(wanted, rl.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { rl = raised }
        }
        // 128 descriptors for everything else (buses, audit files, pipes, libraries).
        let room = max(4, (Int(clamping: rl.rlim_cur) - 128) / 2)
        guard limits.maxConnections + limits.reserveConnections > room else { return limits }
        var fitted = limits
        fitted.reserveConnections = max(1, min(limits.reserveConnections, room / 4))
        fitted.maxConnections = max(1, room - fitted.reserveConnections)
        logger.warning("the file descriptor limit allows fewer connections than asked",
                       metadata: ["nofile": "\(rl.rlim_cur)", "max_connections": "\(fitted.maxConnections)",
                                  "reserve_connections": "\(fitted.reserveConnections)"])
        return fitted
    }

    // MARK: Accept

    private func accept(_ channel: any Channel, credentials: deskgate_ucred, peerPidfd: CInt) throws {
        let identity: PeerIdentity
        let pidfd: Int32
        do {
            (identity, pidfd) = try identify(credentials: credentials, peerPidfd: peerPidfd)
        } catch {
            logger.warning("refused connection", metadata: ["reason": "\(error)", "uid": "\(credentials.uid)", "pid": "\(credentials.pid)"])
            hooks.peerRefused(credentials.uid, credentials.pid, error.description)
            // Say why before closing: the refusal is a protocol-level answer, not a crash.
            var buffer = channel.allocator.buffer(capacity: 256)
            let reason = if case .foreignUID = error { "foreign_uid" } else { "unidentified" }
            buffer.writeBytes(Message.response(Response(id: .null, error: RPCError(.denied, "connection refused: \(error)", data: ["reason": .string(reason)]))).line)
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        // Bounds: connections per client process and in all, with a reserve past the total for
        // the calls that keep the person in control. Counted and taken under one lock.
        enum Admission { case full, reserve, refused(reason: String, limit: Int, message: String) }
        let limits = self.limits
        let (sessionID, admission) = state.withLock { s -> (UInt64, Admission) in
            let fromProcess = s.sessions.values.reduce(0) { $0 + ($1.identity.pid == identity.pid ? 1 : 0) }
            if fromProcess >= limits.maxConnectionsPerProcess {
                return (0, .refused(reason: "connections_per_process", limit: limits.maxConnectionsPerProcess,
                                    message: "this process already holds \(fromProcess) connections, the most one process may"))
            }
            // The reserve is for a process that holds none yet (a person's CLI, a helper starting):
            // a client already connected cannot take it too.
            if s.sessions.count >= limits.maxConnections + limits.reserveConnections
                || (s.sessions.count >= limits.maxConnections && fromProcess > 0) {
                return (0, .refused(reason: "connections_total", limit: limits.maxConnections,
                                    message: "the daemon holds as many connections as it accepts"))
            }
            defer { s.nextSessionID += 1 }
            return (s.nextSessionID, s.sessions.count >= limits.maxConnections ? .reserve : .full)
        }
        if case .refused(let reason, let limit, let message) = admission {
            close(pidfd)
            logger.warning("refused connection: \(reason)", metadata: ["pid": "\(identity.pid)", "exe": "\(identity.exe)"])
            var buffer = channel.allocator.buffer(capacity: 256)
            buffer.writeBytes(Message.response(Response(id: .null, error: RPCError(.limitReached, "connection refused: \(message)",
                                                                                   data: ["reason": .string(reason), "limit": .int(Int64(limit))]))).line)
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        let session = ClientSession(id: sessionID, identity: identity, pidfd: pidfd, outbound: ChannelOutbound(channel: channel))
        state.withLock { s in
            s.sessions[sessionID] = session
            s.channels[sessionID] = channel
        }
        session.onClose { [weak self] in
            self?.state.withLock { s in
                s.sessions[sessionID] = nil
                s.channels[sessionID] = nil
            }
        }
        logger.debug("client connected", metadata: ["client": "\(sessionID)", "pid": "\(identity.pid)", "exe": "\(identity.exe)"])
        let reserve = if case .reserve = admission { true } else { false }
        try channel.pipeline.syncOperations.addHandler(RPCChannelHandler(limits: limits, dispatcher: dispatcher, session: session, server: self,
                                                                         reserve: reserve, logger: logger))
        hooks.sessionOpened(session)
    }

    private func identify(credentials: deskgate_ucred, peerPidfd: CInt) throws(IdentityError) -> (PeerIdentity, Int32) {
        let daemonUID = geteuid()
        guard credentials.uid == daemonUID else {
            if peerPidfd >= 0 { close(peerPidfd) }
            throw .foreignUID(peer: credentials.uid, daemon: daemonUID)
        }
        var pidfd: Int32 = -1
        var source = PeerIdentity.PidfdSource.soPeerPidfd
        if peerPidfd >= 0 {
            pidfd = peerPidfd
        } else {
            // Kernel without SO_PEERPIDFD: pin the pid now; identify() then checks it is still the same process.
            pidfd = deskgate_pidfd_open(credentials.pid)
            source = .pidfdOpen
            guard pidfd >= 0 else { throw .processGone(credentials.pid) }
        }
        do {
            let identity = try ProcessInspection.identify(uid: credentials.uid, gid: credentials.gid, pid: credentials.pid, pidfd: pidfd, source: source)
            return (identity, pidfd)
        } catch {
            close(pidfd)
            throw error
        }
    }

    // MARK: Socket path

    /// Makes sure the socket's directory is ours and private, and that no live daemon owns the path.
    static func prepareSocketPath(_ path: String) throws(ListenError) {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let dir = directory.isEmpty ? "." : directory
        var st = stat()
        if lstat(dir, &st) != 0 {
            guard mkdir(dir, 0o700) == 0 || errno == EEXIST else {
                throw .system("cannot create socket directory \(dir): \(String(cString: strerror(errno)))")
            }
            guard lstat(dir, &st) == 0 else { throw .system("cannot stat \(dir)") }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .unsafeDirectory(dir, "not a directory (symlinks are not followed)") }
        guard st.st_uid == geteuid() else { throw .unsafeDirectory(dir, "owned by uid \(st.st_uid), not \(geteuid())") }
        if dir.hasSuffix("/deskgate") || dir.split(separator: "/").last?.hasPrefix("deskgate-") == true {
            if st.st_mode & 0o077 != 0 { _ = chmod(dir, 0o700) }
        }
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path) }
            if isLive(path) { throw .alreadyRunning(path) }
            // Left by a daemon that died: replace it.
            _ = unlink(path)
        }
    }

    /// Whether something accepts connections on `path`.
    static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return deskgate_unix_connect(fd, path) == 0
    }
}
