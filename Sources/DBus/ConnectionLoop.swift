import CDBus
import Glibc
import Synchronization

/// The thread that owns one libdbus connection.
///
/// Everything that touches the `DBusConnection*` runs on this thread: sending, reading, dispatch,
/// pending-call completion, timeouts. Other threads only append commands to `shared` and poke the
/// wake-up pipe.
final class ConnectionLoop: @unchecked Sendable {
    private enum Command {
        case batch(UInt64, [MessagePointer?], Int, ReplyBatch)
        case raw(UInt64, MessagePointer, Int, RawHandler)
        case cancel(UInt64)
    }

    /// Handles a raw reply (or error) on the loop thread; the message is valid only during the call.
    typealias RawHandler = @Sendable (Result<RawMessage, DBusError>) -> Void

    /// Where a reply goes: one slot of a batch, or a caller's own decoder.
    private enum Completion {
        case batch(ReplyBatch, Int)
        case raw(RawHandler)

        func finish(_ result: Result<[DBusValue], DBusError>) {
            switch self {
            case .batch(let collector, let index): collector.set(index, result)
            case .raw(let handler):
                if case .failure(let error) = result { handler(.failure(error)) }
            }
        }

        var wantsRawMessage: RawHandler? {
            if case .raw(let handler) = self { return handler }
            return nil
        }
    }

    private struct Shared {
        var commands: [Command] = []
        var nextID: UInt64 = 1
        var closing = false
        var closed = false
        var connected = false
        var peerPID: Int32?
        var wakePending = false
        var handlers: [UInt64: @Sendable (DBusSignal) -> Void] = [:]
        var nextHandlerID: UInt64 = 1
    }

    private struct Pending {
        let call: OpaquePointer
        let continuation: Completion
        let timeoutMs: Int
    }

    private let shared = Mutex(Shared())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    // Confined to the loop thread.
    private var connection: OpaquePointer?
    private var pending: [UInt64: Pending] = [:]
    private var deadlines: [Int: DeadlineQueue] = [:]
    private var finishedCalls: [OpaquePointer] = []

    init() throws(DBusError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw DBusError(name: DBusError.failedName, message: "pipe2 failed: errno \(errno)")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    var isConnected: Bool { shared.withLock { $0.connected } }
    var peerProcessID: Int32? { shared.withLock { $0.peerPID } }

    // MARK: Called from any thread

    func start(address: String, isBus: Bool, threadName: String,
               onOpen: @escaping @Sendable (Result<String?, DBusError>) -> Void)
    {
        let body = ThreadBody { [self] in
            // Named, so per-thread counters (/proc/PID/task/*/comm) show it; otherwise it inherits
            // the name of whichever event-loop thread opened it. Linux allows 15 bytes.
            // (pthread_setname_np needs _GNU_SOURCE, which Glibc's module does not define.)
            let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                let bytes = Array(threadName.utf8.prefix(15))
                _ = write(fd, bytes, bytes.count)
                Glibc.close(fd)
            }
            self.run(address: address, isBus: isBus, onOpen: onOpen)
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(body).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            onOpen(.failure(DBusError(name: DBusError.failedName, message: "cannot start thread: \(rc)")))
            return
        }
        pthread_detach(thread)
    }

    /// Queues a call whose reply is handed undecoded to `handler` on the loop thread.
    func enqueueRawCall(message: MessagePointer, timeoutMs: Int, handler: @escaping RawHandler) -> UInt64 {
        let (id, accepted, wake) = shared.withLock { s -> (UInt64, Bool, Bool) in
            let id = s.nextID
            s.nextID += 1
            if s.closing || s.closed { return (id, false, false) }
            s.commands.append(.raw(id, message, timeoutMs, handler))
            let wake = !s.wakePending
            s.wakePending = true
            return (id, true, wake)
        }
        if !accepted {
            dbus_message_unref(message.pointer)
            handler(.failure(.disconnected))
        } else if wake {
            poke()
        }
        return id
    }

    /// Queues several calls at once; the collector resumes its caller when all have finished.
    func enqueueBatch(messages: [MessagePointer?], timeoutMs: Int, collector: ReplyBatch) {
        let (accepted, wake) = shared.withLock { s -> (Bool, Bool) in
            let id = s.nextID
            s.nextID += UInt64(messages.count)
            if s.closing || s.closed { return (false, false) }
            s.commands.append(.batch(id, messages, timeoutMs, collector))
            let wake = !s.wakePending
            s.wakePending = true
            return (true, wake)
        }
        if !accepted {
            for message in messages { if let message { dbus_message_unref(message.pointer) } }
            collector.failAll(.disconnected)
        } else if wake {
            poke()
        }
    }

    func enqueueCancel(_ id: UInt64) {
        let wake = shared.withLock { s -> Bool in
            if s.closed { return false }
            s.commands.append(.cancel(id))
            let wake = !s.wakePending
            s.wakePending = true
            return wake
        }
        if wake { poke() }
    }

    func addSignalHandler(_ handler: @escaping @Sendable (DBusSignal) -> Void) -> SignalHandlerToken {
        shared.withLock { s in
            let id = s.nextHandlerID
            s.nextHandlerID += 1
            s.handlers[id] = handler
            return SignalHandlerToken(id: id)
        }
    }

    func removeSignalHandler(_ token: SignalHandlerToken) {
        _ = shared.withLock { $0.handlers.removeValue(forKey: token.id) }
    }

    func close() {
        let wake = shared.withLock { s -> Bool in
            if s.closing || s.closed { return false }
            s.closing = true
            return true
        }
        if wake { poke() }
    }

    private func poke() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    // MARK: Loop thread

    private func run(address: String, isBus: Bool, onOpen: @Sendable (Result<String?, DBusError>) -> Void) {
        var error = CDBus.DBusError()
        dbus_error_init(&error)
        guard let conn = dbus_connection_open_private(address, &error) else {
            onOpen(.failure(Self.take(&error)))
            finish()
            return
        }
        connection = conn
        dbus_connection_set_exit_on_disconnect(conn, 0)
        var uniqueName: String?
        if isBus {
            guard dbus_bus_register(conn, &error) != 0 else {
                onOpen(.failure(Self.take(&error)))
                dbus_connection_close(conn)
                dbus_connection_unref(conn)
                connection = nil
                finish()
                return
            }
            uniqueName = dbus_bus_get_unique_name(conn).map { String(cString: $0) }
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        dbus_connection_add_filter(conn, { _, message, userData in
            let loop = Unmanaged<ConnectionLoop>.fromOpaque(userData!).takeUnretainedValue()
            loop.handleIncoming(message!)
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }, me, nil)
        let peerPID = Self.peerCredentialsPID(conn)
        shared.withLock {
            $0.connected = true
            $0.peerPID = peerPID
        }
        onOpen(.success(uniqueName))
        mainLoop(conn)
        dispatchAll(conn)
        failEverything(with: .disconnected)
        dbus_connection_close(conn)
        dbus_connection_unref(conn)
        connection = nil
        finish()
    }

    /// The pid of the process at the other end of the socket, from the kernel (SO_PEERCRED).
    private static func peerCredentialsPID(_ conn: OpaquePointer) -> Int32? {
        var fd: Int32 = -1
        guard dbus_connection_get_socket(conn, &fd) != 0, fd >= 0 else { return nil }
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        let soPeerCred: Int32 = 17  // SO_PEERCRED on Linux
        guard getsockopt(fd, SOL_SOCKET, soPeerCred, &credentials, &length) == 0, credentials.pid > 0 else {
            return nil
        }
        return credentials.pid
    }

    private static func take(_ error: inout CDBus.DBusError) -> DBusError {
        let name = error.name.map { String(cString: $0) } ?? DBusError.failedName
        let message = error.message.map { String(cString: $0) } ?? ""
        dbus_error_free(&error)
        return DBusError(name: name, message: message)
    }

    private func finish() {
        let leftovers = shared.withLock { s -> [Command] in
            s.closed = true
            s.connected = false
            defer { s.commands = [] }
            return s.commands
        }
        for command in leftovers { Self.discard(command) }
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    private static func discard(_ command: Command) {
        switch command {
        case .batch(_, let messages, _, let collector):
            for message in messages { if let message { dbus_message_unref(message.pointer) } }
            collector.failAll(.disconnected)
        case .raw(_, let message, _, let handler):
            dbus_message_unref(message.pointer)
            handler(.failure(.disconnected))
        case .cancel:
            break
        }
    }

    private func mainLoop(_ conn: OpaquePointer) {
        let fd: Int32 = {
            var fd: Int32 = -1
            _ = dbus_connection_get_socket(conn, &fd)
            return fd
        }()
        while true {
            let (commands, closing) = shared.withLock { s -> ([Command], Bool) in
                s.wakePending = false
                defer { s.commands = [] }
                return (s.commands, s.closing)
            }
            if closing {
                for command in commands { Self.discard(command) }
                return
            }
            for command in commands { execute(command, conn) }

            _ = dbus_connection_read_write(conn, 0)
            dispatchAll(conn)
            expireDeadlines()
            if dbus_connection_get_is_connected(conn) == 0 {
                shared.withLock { $0.connected = false; $0.closing = true }
                return
            }
            if dbus_connection_get_dispatch_status(conn) == DBUS_DISPATCH_DATA_REMAINS { continue }

            var fds = [
                pollfd(fd: fd, events: Int16(POLLIN) | (dbus_connection_has_messages_to_send(conn) != 0 ? Int16(POLLOUT) : 0), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let rc = poll(&fds, 2, Int32(nextTimeoutMs()))
            if rc > 0, fds[1].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &buffer, buffer.count) > 0 {}
            }
        }
    }

    private func execute(_ command: Command, _ conn: OpaquePointer) {
        switch command {
        case .cancel(let id):
            guard let entry = pending.removeValue(forKey: id) else { return }
            dbus_pending_call_cancel(entry.call)
            dbus_pending_call_unref(entry.call)
            entry.continuation.finish(.failure(.cancelled))
        case .raw(let id, let message, let timeoutMs, let handler):
            send(id: id, message: message, timeoutMs: timeoutMs, completion: .raw(handler), conn)
        case .batch(let firstID, let messages, let timeoutMs, let collector):
            for (index, message) in messages.enumerated() {
                guard let message else { continue }  // already failed validation
                send(id: firstID + UInt64(index), message: message, timeoutMs: timeoutMs,
                     completion: .batch(collector, index), conn)
            }
        }
    }

    private func send(id: UInt64, message: MessagePointer, timeoutMs: Int, completion: Completion,
                      _ conn: OpaquePointer)
    {
        var call: OpaquePointer?
        let sent = dbus_connection_send_with_reply(conn, message.pointer, &call, Int32.max)
        dbus_message_unref(message.pointer)
        guard sent != 0, let call else {
            completion.finish(.failure(.disconnected))
            return
        }
        pending[id] = Pending(call: call, continuation: completion, timeoutMs: timeoutMs)
        deadlines[timeoutMs, default: DeadlineQueue()].push(deadline: Self.now() + UInt64(timeoutMs) * 1_000_000, id: id)
        let box = Unmanaged.passRetained(PendingBox(id: id, loop: self)).toOpaque()
        dbus_pending_call_set_notify(call, { call, userData in
            let box = Unmanaged<PendingBox>.fromOpaque(userData!).takeUnretainedValue()
            box.loop.complete(id: box.id, call: call!)
        }, box, { userData in
            Unmanaged<PendingBox>.fromOpaque(userData!).release()
        })
        if dbus_pending_call_get_completed(call) != 0 { complete(id: id, call: call) }
    }

    /// Pending-call notify: runs during dispatch on this thread.
    private func complete(id: UInt64, call: OpaquePointer) {
        guard let entry = pending.removeValue(forKey: id) else { return }
        let result: Result<[DBusValue], DBusError>
        if let handler = entry.continuation.wantsRawMessage {
            finishedCalls.append(call)
            guard let reply = dbus_pending_call_steal_reply(call) else {
                handler(.failure(.disconnected))
                return
            }
            if dbus_message_get_type(reply) == DBusMessageType.error {
                if case .failure(let error) = Self.decodeReply(reply) { handler(.failure(error)) }
            } else {
                handler(.success(RawMessage(pointer: reply)))
            }
            dbus_message_unref(reply)
            return
        }
        if let reply = dbus_pending_call_steal_reply(call) {
            result = Self.decodeReply(reply)
            dbus_message_unref(reply)
        } else {
            result = .failure(.disconnected)
        }
        // Our reference is dropped after dispatch returns, never inside libdbus's own callback.
        finishedCalls.append(call)
        entry.continuation.finish(result)
    }

    private static func decodeReply(_ reply: OpaquePointer) -> Result<[DBusValue], DBusError> {
        if dbus_message_get_type(reply) == DBusMessageType.error {
            let name = dbus_message_get_error_name(reply).map { String(cString: $0) } ?? DBusError.failedName
            let args = DBusCodec.read(reply)
            return .failure(DBusError(name: name, message: args.first?.stringValue ?? ""))
        }
        return .success(DBusCodec.read(reply))
    }

    private func dispatchAll(_ conn: OpaquePointer) {
        while dbus_connection_dispatch(conn) == DBUS_DISPATCH_DATA_REMAINS {}
        for call in finishedCalls { dbus_pending_call_unref(call) }
        finishedCalls.removeAll(keepingCapacity: true)
    }

    private func handleIncoming(_ message: OpaquePointer) {
        guard dbus_message_get_type(message) == DBusMessageType.signal else { return }
        let handlers = shared.withLock { Array($0.handlers.values) }
        guard !handlers.isEmpty else { return }
        let signal = DBusSignal(
            sender: dbus_message_get_sender(message).map { String(cString: $0) },
            path: dbus_message_get_path(message).map { String(cString: $0) } ?? "",
            interface: dbus_message_get_interface(message).map { String(cString: $0) } ?? "",
            member: dbus_message_get_member(message).map { String(cString: $0) } ?? "",
            args: DBusCodec.read(message))
        for handler in handlers { handler(signal) }
    }

    private func expireDeadlines() {
        let now = Self.now()
        for (timeoutMs, var queue) in deadlines {
            while let (deadline, id) = queue.front, deadline <= now || pending[id] == nil {
                queue.popFront()
                guard let entry = pending.removeValue(forKey: id) else { continue }
                dbus_pending_call_cancel(entry.call)
                dbus_pending_call_unref(entry.call)
                entry.continuation.finish(.failure(.timeout(after: timeoutMs)))
            }
            deadlines[timeoutMs] = queue.isEmpty ? nil : queue
        }
    }

    private func nextTimeoutMs() -> Int {
        var earliest: UInt64?
        for queue in deadlines.values {
            if let (deadline, _) = queue.front { earliest = min(earliest ?? deadline, deadline) }
        }
        guard let earliest else { return -1 }
        let now = Self.now()
        if earliest <= now { return 0 }
        return Int((earliest - now + 999_999) / 1_000_000)
    }

    private func failEverything(with error: DBusError) {
        for (_, entry) in pending {
            dbus_pending_call_cancel(entry.call)
            dbus_pending_call_unref(entry.call)
            entry.continuation.finish(.failure(error))
        }
        pending.removeAll()
        deadlines.removeAll()
    }

    static func now() -> UInt64 { MonotonicClock.nanoseconds() }
}

/// A reply message lent to a raw handler for the duration of the call.
struct RawMessage: @unchecked Sendable {
    let pointer: OpaquePointer

    func reader() -> DBusReader {
        var iter = DBusMessageIter()
        dbus_message_iter_init(pointer, &iter)
        return DBusReader(iter: iter, message: pointer)
    }
}

/// Collects the replies of a batch; resumes its caller once every slot is filled. Used only on
/// the loop thread (and by the caller before the batch is queued).
final class ReplyBatch: @unchecked Sendable {
    typealias Results = [Result<[DBusValue], DBusError>]
    private var results: Results
    private var remaining: Int
    private let continuation: CheckedContinuation<Results, Never>

    init(results: Results, remaining: Int, continuation: CheckedContinuation<Results, Never>) {
        self.results = results
        self.remaining = remaining
        self.continuation = continuation
        if remaining == 0 { continuation.resume(returning: results) }
    }

    func set(_ index: Int, _ result: Result<[DBusValue], DBusError>) {
        results[index] = result
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: results) }
    }

    func failAll(_ error: DBusError) {
        guard remaining > 0 else { return }
        for index in results.indices {
            if case .failure(let e) = results[index], e.name == ReplyBatch.unsetName { results[index] = .failure(error) }
        }
        remaining = 0
        continuation.resume(returning: results)
    }

    static let unsetName = "org.deskgate.DBus.Error.Unset"
}

/// The user data of a pending call's notify function.
private final class PendingBox {
    let id: UInt64
    unowned(unsafe) let loop: ConnectionLoop
    init(id: UInt64, loop: ConnectionLoop) {
        self.id = id
        self.loop = loop
    }
}

private final class ThreadBody: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Deadlines of calls that share one timeout value: they expire in the order they were sent.
struct DeadlineQueue {
    private var items: [(UInt64, UInt64)] = []
    private var head = 0

    var isEmpty: Bool { head >= items.count }
    var front: (UInt64, UInt64)? { isEmpty ? nil : items[head] }

    mutating func push(deadline: UInt64, id: UInt64) { items.append((deadline, id)) }

    mutating func popFront() {
        head += 1
        if head > 1024, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}

/// The monotonic clock in nanoseconds: what call timeouts and request deadlines are measured by.
public enum MonotonicClock {
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
