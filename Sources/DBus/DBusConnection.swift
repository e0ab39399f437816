import CDBus
import Glibc
import Synchronization

/// A signal received on a connection.
public struct DBusSignal: Sendable {
    /// Unique bus name of the sender (nil on peer-to-peer connections).
    public var sender: String?
    public var path: String
    public var interface: String
    public var member: String
    public var args: [DBusValue]
}

/// Identifies a signal handler registered with ``DBusConnection/addSignalHandler(_:)``.
public struct SignalHandlerToken: Hashable, Sendable {
    let id: UInt64
}

/// A private libdbus connection owned by one dedicated thread.
///
/// The thread runs a poll loop over the connection's socket and a wake-up pipe; callers hand it
/// work through a queue and wait on continuations, so no blocking call ever runs on Swift's
/// cooperative pool and any number of calls can be in flight at once (pipelining). Replies are
/// decoded on the connection's thread. Every call has its own timeout.
public final class DBusConnection: Sendable {
    private let loop: ConnectionLoop
    /// The unique name the bus gave this connection (nil for peer-to-peer connections).
    public let uniqueName: String?
    /// The address this connection was opened with.
    public let address: String

    private init(loop: ConnectionLoop, uniqueName: String?, address: String) {
        self.loop = loop
        self.uniqueName = uniqueName
        self.address = address
    }

    /// Opens a private connection.
    /// - Parameters:
    ///   - address: a D-Bus address such as `unix:path=/run/user/0/bus`.
    ///   - isBus: true for a message bus (registers with `Hello`), false for a peer-to-peer
    ///     connection to an app.
    ///   - name: a short name for the connection's thread, for debugging.
    public static func open(address: String, isBus: Bool, name: String = "dbus") async throws(DBusError)
        -> DBusConnection
    {
        if address.utf8.contains(0) { throw .invalidArgs("address contains a NUL character") }
        DBusConnection.initThreadsOnce
        let loop = try ConnectionLoop()
        let result: Result<String?, DBusError> = await withCheckedContinuation { continuation in
            loop.start(address: address, isBus: isBus, threadName: name) { continuation.resume(returning: $0) }
        }
        let uniqueName = try result.get()
        return DBusConnection(loop: loop, uniqueName: uniqueName, address: address)
    }

    /// The session bus of this process (`DBUS_SESSION_BUS_ADDRESS`).
    public static func openSessionBus() async throws(DBusError) -> DBusConnection {
        guard let raw = getenv("DBUS_SESSION_BUS_ADDRESS"), case let address = String(cString: raw),
              !address.isEmpty
        else { throw DBusError(name: DBusError.failedName, message: "DBUS_SESSION_BUS_ADDRESS is not set") }
        return try await open(address: address, isBus: true, name: "dbus-session")
    }

    /// libdbus needs its locks turned on before it is used from more than one thread.
    private static let initThreadsOnce: Void = { _ = dbus_threads_init_default() }()

    /// Calls a method and waits for its reply.
    /// - Parameters:
    ///   - destination: bus name of the peer; nil on peer-to-peer connections.
    ///   - timeout: how long to wait for the reply; then the call fails with
    ///     `org.freedesktop.DBus.Error.Timeout` (``DBusError/isTimeout``).
    /// - Returns: the reply's arguments.
    /// - Throws: the peer's error (its D-Bus error name kept), or a local one.
    ///   - autoStart: false sets `NO_AUTO_START`: the bus answers `ServiceUnknown` rather than
    ///     starting a service for the name (a keyring, say) that is not running.
    public func call(
        destination: String?, path: String, interface: String, member: String,
        args: [DBusValue] = [], timeout: Duration, autoStart: Bool = true
    ) async throws(DBusError) -> [DBusValue] {
        try await call(destination: destination, path: path, interface: interface, member: member, args: args,
                       timeout: timeout, autoStart: autoStart, decode: Self.readAllArguments)
    }

    /// Decodes every argument of a reply into ``DBusValue``s.
    private static let readAllArguments: @Sendable (inout DBusReader) -> [DBusValue] = { reader in
        reader.message.map(DBusCodec.read) ?? []
    }

    /// Calls a method and decodes the reply with `decode` on the connection's thread, straight
    /// from the message (for large replies such as `Cache.GetItems`).
    public func call<T: Sendable>(
        destination: String?, path: String, interface: String, member: String, args: [DBusValue] = [],
        timeout: Duration, autoStart: Bool = true, decode: @escaping @Sendable (inout DBusReader) -> T
    ) async throws(DBusError) -> T {
        let message = try Self.makeCall(destination: destination, path: path, interface: interface,
                                        member: member, args: args)
        if !autoStart { dbus_message_set_auto_start(message.pointer, 0) }
        let ms = Self.milliseconds(timeout)
        let token = CallToken()
        let result: Result<T, DBusError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let enqueued = token.state.withLock { state -> Bool in
                    if case .cancelled = state { return false }
                    let id = loop.enqueueRawCall(message: message, timeoutMs: ms) { reply in
                        switch reply {
                        case .success(let raw):
                            var reader = raw.reader()
                            continuation.resume(returning: .success(decode(&reader)))
                        case .failure(let error):
                            continuation.resume(returning: .failure(error))
                        }
                    }
                    state = .enqueued(id)
                    return true
                }
                if !enqueued {
                    dbus_message_unref(message.pointer)
                    continuation.resume(returning: .failure(.cancelled))
                }
            }
        } onCancel: {
            let id: UInt64? = token.state.withLock { state in
                defer { state = .cancelled }
                if case .enqueued(let id) = state { return id }
                return nil
            }
            if let id { loop.enqueueCancel(id) }
        }
        return try result.get()
    }

    /// Sends several calls at once and waits until every one has a reply, an error or has timed
    /// out. Much cheaper than one task per call when walking thousands of nodes.
    /// - Returns: one result per call, in order.
    public func callBatch(_ calls: [DBusCall], timeout: Duration) async -> [Result<[DBusValue], DBusError>] {
        guard !calls.isEmpty else { return [] }
        var messages: [MessagePointer?] = []
        messages.reserveCapacity(calls.count)
        var initial = [Result<[DBusValue], DBusError>](
            repeating: .failure(DBusError(name: ReplyBatch.unsetName, message: "")), count: calls.count)
        var remaining = 0
        for (index, call) in calls.enumerated() {
            do {
                messages.append(try Self.makeCall(destination: call.destination, path: call.path,
                                                  interface: call.interface, member: call.member, args: call.args))
                remaining += 1
            } catch {
                messages.append(nil)
                initial[index] = .failure(error)
            }
        }
        let ms = Self.milliseconds(timeout)
        let sendable = messages
        let ready = initial
        let count = remaining
        return await withCheckedContinuation { continuation in
            let collector = ReplyBatch(results: ready, remaining: count, continuation: continuation)
            if count > 0 { loop.enqueueBatch(messages: sendable, timeoutMs: ms, collector: collector) }
        }
    }

    /// Adds a match rule on the bus so that matching signals are delivered to this connection.
    public func addMatch(_ rule: String, timeout: Duration = .seconds(5)) async throws(DBusError) {
        _ = try await call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                           interface: "org.freedesktop.DBus", member: "AddMatch", args: [.string(rule)],
                           timeout: timeout)
    }

    /// Removes a match rule added with ``addMatch(_:timeout:)``.
    public func removeMatch(_ rule: String, timeout: Duration = .seconds(5)) async throws(DBusError) {
        _ = try await call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                           interface: "org.freedesktop.DBus", member: "RemoveMatch", args: [.string(rule)],
                           timeout: timeout)
    }

    /// Registers a handler for every signal this connection receives. It runs on the
    /// connection's thread and must return quickly (hand work to a task or stream).
    public func addSignalHandler(_ handler: @escaping @Sendable (DBusSignal) -> Void) -> SignalHandlerToken {
        loop.addSignalHandler(handler)
    }

    public func removeSignalHandler(_ token: SignalHandlerToken) {
        loop.removeSignalHandler(token)
    }

    /// The pid of the peer process as the kernel reports it for the socket (the bus daemon's pid
    /// on a bus connection, the app's on a peer-to-peer one).
    public var peerProcessID: Int32? { loop.peerProcessID }

    /// Whether the connection is still open.
    public var isConnected: Bool { loop.isConnected }

    /// Closes the connection: pending calls fail with `Disconnected`, the thread exits.
    public func close() {
        loop.close()
    }

    deinit {
        loop.close()
    }

    // MARK: Message building

    private static func makeCall(
        destination: String?, path: String, interface: String, member: String, args: [DBusValue]
    ) throws(DBusError) -> MessagePointer {
        if let destination, !DBusCodec.isValidBusName(destination) { throw .invalidArgs("invalid bus name") }
        guard DBusCodec.isValidPath(path) else { throw .invalidArgs("invalid object path") }
        guard DBusCodec.isValidInterface(interface) else { throw .invalidArgs("invalid interface name") }
        guard DBusCodec.isValidMember(member) else { throw .invalidArgs("invalid member name") }
        for arg in args { try DBusCodec.validate(arg) }
        let created: OpaquePointer? = path.withCString { cPath in
            interface.withCString { cInterface in
                member.withCString { cMember in
                    if let destination {
                        return destination.withCString { dbus_message_new_method_call($0, cPath, cInterface, cMember) }
                    }
                    return dbus_message_new_method_call(nil, cPath, cInterface, cMember)
                }
            }
        }
        guard let message = created else { throw DBusError(name: DBusError.failedName, message: "out of memory") }
        guard DBusCodec.append(args, to: message) else {
            dbus_message_unref(message)
            throw .invalidArgs("cannot marshal arguments")
        }
        return MessagePointer(pointer: message)
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int(max(1, min(ms, 3_600_000)))
    }
}

/// One method call of a batch (``DBusConnection/callBatch(_:timeout:)``).
public struct DBusCall: Sendable {
    public var destination: String?
    public var path: String
    public var interface: String
    public var member: String
    public var args: [DBusValue]

    public init(destination: String?, path: String, interface: String, member: String, args: [DBusValue] = []) {
        self.destination = destination
        self.path = path
        self.interface = interface
        self.member = member
        self.args = args
    }
}

/// A libdbus message handed from a caller to the connection thread.
struct MessagePointer: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Links a call's cancellation handler with its queued call.
private final class CallToken: Sendable {
    enum State { case new, enqueued(UInt64), cancelled }
    let state = Mutex<State>(.new)
}
