#if canImport(Glibc)
import Glibc
#endif
public import JSONRPC
import Synchronization

/// The transport side of a connection, as sessions see it: thread-safe sends and close.
public protocol ConnectionOutbound: Sendable {
    /// Queues one encoded message line (newline included) for the peer.
    func send(_ line: [UInt8])
    /// Closes the connection.
    func close()
}

/// One connected client: its verified identity, its advisory label, and the way back to it.
///
/// Created at accept, after the peer's identity is verified; lives until the connection closes.
/// Server-to-client notifications (events) and requests (prompts) go out through it.
public final class ClientSession: Sendable {
    /// Unique for the daemon's lifetime; never reused.
    public let id: UInt64
    public let identity: PeerIdentity
    /// The pidfd pinning the peer process, owned by the session.
    public let pidfd: Int32
    private let outbound: any ConnectionOutbound

    private struct State {
        var label: String?
        var open = true
        var nextOutboundID: Int64 = 1
        var pendingOutbound: [RequestID: CheckedContinuation<JSONValue, any Error>] = [:]
        var closeHandlers: [@Sendable () -> Void] = []
        var closeAfterReply = false
    }
    private let state = Mutex(State())

    public init(id: UInt64, identity: PeerIdentity, pidfd: Int32, outbound: any ConnectionOutbound) {
        self.id = id
        self.identity = identity
        self.pidfd = pidfd
        self.outbound = outbound
    }

    deinit {
        if pidfd >= 0 { Glibc.close(pidfd) }
    }

    /// The advisory label from `session.hello`: shown apart from the verified identity, never matched.
    public var label: String? {
        get { state.withLock { $0.label } }
        set { state.withLock { $0.label = newValue } }
    }

    public var isOpen: Bool { state.withLock { $0.open } }

    /// Verified identity plus the advisory label, as `session.whoami` and audit records show it.
    public var identityJSON: JSONValue {
        guard case .object(var object) = identity.json else { return identity.json }
        object["label"] = JSONValue(label)
        return .object(object)
    }

    /// False if the peer process has exited or exec'd another executable since it connected.
    public func executableUnchanged() -> Bool {
        guard ProcessInspection.pidfdRefers(pidfd, to: identity.pid) else { return false }
        let current = ProcessInspection.fileID(path: "/proc/\(identity.pid)/exe")
        return current != nil && current == identity.exeFileID
    }


    /// Sends a notification to the client.
    public func notify(_ method: String, _ params: JSONValue? = nil) {
        guard isOpen else { return }
        outbound.send(Message.notification(Notification(method: method, params: params)).line)
    }

    /// Sends a request to the client and waits for its answer.
    /// - Throws: the client's ``RPCError``, ``SessionError/closed`` or ``SessionError/timeout``.
    public func request(_ method: String, _ params: JSONValue? = nil, timeout: Duration) async throws -> JSONValue {
        let id: RequestID? = state.withLock { s in
            guard s.open else { return nil }
            defer { s.nextOutboundID += 1 }
            return .string("dg-\(s.nextOutboundID)")
        }
        guard let id else { throw SessionError.closed }
        let timer = Task { [weak self] in
            try? await GlobalExecutor.sleep(for: timeout)
            if !Task.isCancelled { self?.failOutbound(id, SessionError.timeout) }
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let registered = state.withLock { s -> Bool in
                    guard s.open else { return false }
                    s.pendingOutbound[id] = continuation
                    return true
                }
                guard registered else {
                    continuation.resume(throwing: SessionError.closed)
                    return
                }
                outbound.send(Message.request(Request(id: id, method: method, params: params)).line)
            }
        } onCancel: {
            failOutbound(id, CancellationError())
        }
    }

    /// Routes a response from the client to the request it answers. Returns false if unknown.
    @discardableResult
    public func deliver(_ response: Response) -> Bool {
        guard let continuation = state.withLock({ $0.pendingOutbound.removeValue(forKey: response.id) }) else { return false }
        switch response.result {
        case .success(let value): continuation.resume(returning: value)
        case .failure(let error): continuation.resume(throwing: error)
        }
        return true
    }

    private func failOutbound(_ id: RequestID, _ error: any Error) {
        state.withLock { $0.pendingOutbound.removeValue(forKey: id) }?.resume(throwing: error)
    }

    /// Runs `handler` once when the connection closes (immediately if it already has).
    public func onClose(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.open { s.closeHandlers.append(handler); return false }
            return true
        }
        if runNow { handler() }
    }


    /// Closes the connection once the next reply has been written (the client learns why).
    public func disconnectAfterReply() { state.withLock { $0.closeAfterReply = true } }

    var closeAfterReply: Bool { state.withLock { $0.closeAfterReply } }

    /// Called by the transport when the connection has closed.
    func closed() {
        let (handlers, pending) = state.withLock { s -> ([@Sendable () -> Void], [CheckedContinuation<JSONValue, any Error>]) in
            guard s.open else { return ([], []) }
            s.open = false
            defer { s.closeHandlers.removeAll(); s.pendingOutbound.removeAll() }
            return (s.closeHandlers, Array(s.pendingOutbound.values))
        }
        for continuation in pending { continuation.resume(throwing: SessionError.closed) }
        for handler in handlers { handler() }
    }
}

public enum SessionError: Error, Sendable, CustomStringConvertible {
    case closed
    case timeout
    public var description: String {
        switch self {
        case .closed: "the connection closed"
        case .timeout: "no answer in time"
        }
    }
}
