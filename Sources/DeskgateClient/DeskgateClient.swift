#if canImport(Glibc)
import Glibc
#endif
import Foundation
public import JSONRPC
import CLinux
import DeskgateAPI
import Synchronization

/// Why a client call failed other than with the daemon's own JSON-RPC error.
public enum DeskgateClientError: Error, CustomStringConvertible, Sendable {
    case daemonNotRunning(socket: String, detail: String)
    case connectionClosed
    case timeout(method: String)
    case io(String)

    public var description: String {
        switch self {
        case .daemonNotRunning(let socket, let detail):
            "deskgated is not running (cannot connect to \(socket): \(detail)). Start it with `systemctl --user enable --now deskgate.socket`, or `make run` in a source checkout."
        case .connectionClosed: "the daemon closed the connection"
        case .timeout(let method): "\(method): no reply from the daemon in time"
        case .io(let detail): "socket error: \(detail)"
        }
    }
}

/// A JSON-RPC client of deskgated over its Unix socket.
///
/// One reader thread per connection parses replies and routes them by id; server-to-client
/// notifications (events) and requests (`agent.prompt`) are delivered on ``incoming``.
public final class DeskgateClient: Sendable {
    private struct State {
        var nextID: Int64 = 1
        var pending: [RequestID: CheckedContinuation<JSONValue, any Error>] = [:]
        var closed = false
    }

    private let fd: Int32
    private let state = Mutex(State())
    private let writeLock = Mutex(())
    private let incomingContinuation: AsyncStream<Message>.Continuation
    /// Server-to-client notifications and requests, in arrival order. Ends when the connection closes.
    public let incoming: AsyncStream<Message>
    public let socketPath: String

    /// The socket path clients use by default (`DESKGATE_SOCKET`, else the XDG runtime default).
    public static func defaultSocketPath() -> String {
        DeskgatePaths.clientSocket(environment: currentEnvironment())
    }

    /// Connects to the daemon.
    public static func connect(socketPath: String? = nil) async throws -> DeskgateClient {
        try connectSync(socketPath: socketPath)
    }

    /// Connects without suspending (the connect of a local socket does not block meaningfully).
    public static func connectSync(socketPath: String? = nil) throws -> DeskgateClient {
        let path = socketPath ?? defaultSocketPath()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DeskgateClientError.io(String(cString: strerror(errno))) }
        guard deskgate_unix_connect(fd, path) == 0 else {
            let error = errno
            Glibc.close(fd)
            if error == ENAMETOOLONG { throw DeskgateClientError.io("socket path too long: \(path)") }
            throw DeskgateClientError.daemonNotRunning(socket: path, detail: String(cString: strerror(error)))
        }
        return DeskgateClient(fd: fd, socketPath: path)
    }

    private init(fd: Int32, socketPath: String) {
        self.fd = fd
        self.socketPath = socketPath
        (incoming, incomingContinuation) = AsyncStream.makeStream(of: Message.self, bufferingPolicy: .bufferingNewest(4096))
        let thread = Thread { [self] in self.readLoop() }
        thread.name = "deskgate-client-reader"
        thread.start()
    }

    deinit {
        // The reader thread holds the client until the connection ends, so the fd is unused here.
        Glibc.close(fd)
    }

    /// Calls `method` and returns its result, or throws the daemon's ``RPCError``.
    public func call(_ method: String, _ params: JSONValue? = nil, timeout: Duration? = nil) async throws -> JSONValue {
        let id: RequestID = state.withLock { s in
            defer { s.nextID += 1 }
            return .int(s.nextID)
        }
        let line = Message.request(Request(id: id, method: method, params: params)).line
        let timeoutTask: Task<Void, Never>? = timeout.map { timeout in
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled, let self else { return }
                self.fail(id: id, with: DeskgateClientError.timeout(method: method))
                try? self.sendLine(Message.notification(Notification(method: "rpc.cancel", params: ["id": id.json])).line)
            }
        }
        defer { timeoutTask?.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let accepted = state.withLock { s -> Bool in
                    if s.closed { return false }
                    s.pending[id] = continuation
                    return true
                }
                guard accepted else {
                    continuation.resume(throwing: DeskgateClientError.connectionClosed)
                    return
                }
                // Cancelled before the continuation was stored: onCancel found nothing to fail.
                if Task.isCancelled {
                    fail(id: id, with: CancellationError())
                    return
                }
                do {
                    try sendLine(line)
                } catch {
                    fail(id: id, with: error)
                }
            }
        } onCancel: {
            // The daemon stops the work (and withdraws a pending prompt) and answers -32800.
            fail(id: id, with: CancellationError())
            try? sendLine(Message.notification(Notification(method: "rpc.cancel", params: ["id": id.json])).line)
        }
    }

    /// Sends a notification (no reply).
    public func notify(_ method: String, _ params: JSONValue? = nil) async throws {
        try sendLine(Message.notification(Notification(method: method, params: params)).line)
    }

    /// Answers a server-to-client request received on ``incoming``.
    public func respond(to id: RequestID, result: Result<JSONValue, RPCError>) async throws {
        try sendLine(Message.response(Response(id: id, result: result)).line)
    }

    /// Sends raw bytes (tests of malformed input use this).
    public func sendRaw(_ bytes: [UInt8]) throws {
        try sendLine(bytes)
    }

    /// Closes the connection; pending calls fail with ``DeskgateClientError/connectionClosed``.
    /// Call it when done: the reader thread keeps the client alive while the connection is open.
    public func close() async {
        closeNow()
    }

    public func closeNow() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    private func sendLine(_ bytes: [UInt8]) throws {
        try writeLock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { raw in
                    send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DeskgateClientError.connectionClosed
                }
                offset += n
            }
        }
    }

    private func fail(id: RequestID, with error: any Error) {
        let continuation = state.withLock { $0.pending.removeValue(forKey: id) }
        continuation?.resume(throwing: error)
    }

    private func readLoop() {
        var framer = LineFramer(maxLineBytes: 256 << 20)
        let decoder = MessageDecoder(maxDepth: 256, maxBatch: 100_000)
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        loop: while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            for event in framer.feed(buffer[0..<n]) {
                guard case .line(let line) = event else { continue }
                switch decoder.decode(line: line) {
                case .single(let decoded): route(decoded)
                case .batch(let entries): entries.forEach(route)
                }
            }
        }
        let pending = state.withLock { s -> [CheckedContinuation<JSONValue, any Error>] in
            s.closed = true
            defer { s.pending.removeAll() }
            return Array(s.pending.values)
        }
        for continuation in pending { continuation.resume(throwing: DeskgateClientError.connectionClosed) }
        incomingContinuation.finish()
    }

    private func route(_ decoded: Decoded) {
        switch decoded {
        case .message(.response(let response)):
            let continuation = state.withLock { $0.pending.removeValue(forKey: response.id) }
            switch response.result {
            case .success(let value): continuation?.resume(returning: value)
            case .failure(let error): continuation?.resume(throwing: error)
            }
        case .message(let message):
            incomingContinuation.yield(message)
        case .invalid(let id, let error):
            // An error reply the decoder could not classify (e.g. a parse error reply with id null).
            if let id, let continuation = state.withLock({ $0.pending.removeValue(forKey: id) }) {
                continuation.resume(throwing: error)
            }
        }
    }
}
