import DeskgateAPI
import JSONRPC
import Logging
import NIOCore
import Synchronization

/// Limits applied to every connection.
public struct ConnectionLimits: Sendable {
    /// Longest accepted line; longer ones get -32600 "message too large" and are skipped.
    public var maxMessageBytes: Int = 1 << 20
    /// Requests served at once per connection; beyond it the daemon stops reading (backpressure).
    public var maxInFlight: Int = 64
    /// Unsent reply bytes a connection may accumulate before it is closed (a client that never reads).
    public var maxReplyBuffer: Int = 64 << 20
    /// Largest batch accepted in one line.
    public var maxBatch: Int = 64
    /// Connections one client process may hold at once.
    public var maxConnectionsPerProcess: Int = 64
    /// Connections all clients together may hold; past it, ``reserveConnections`` more are
    /// accepted that may only make the calls that keep the person in control.
    public var maxConnections: Int = 1024
    /// Connections accepted past ``maxConnections``, limited to ``reserveMethods``: the prompt
    /// helper registering, revoking grants, pausing, and asking who and how the daemon is.
    public var reserveConnections: Int = 32
    /// Bytes of unfinished lines (received, no newline yet) across all connections.
    public var partialLineBudget: Int = 64 << 20
    /// An unfinished line below this size never counts against its connection, so short
    /// requests (a revoke, a pause, a prompt answer) always get through a spent budget.
    public var partialLineFloor: Int = 64 << 10

    /// What a reserve connection may call.
    public static let reserveMethods: Set<String> = [
        "daemon.ping", "daemon.info", "session.hello", "session.whoami", "agent.register",
        "grants.revoke", "grants.revoke_all", "broker.pause", "broker.halt",
    ]

    public init() {}
}

/// Serves JSON-RPC on one connection: framing, decoding, concurrent dispatch with in-flight
/// bounds, cancellation, batches, and server-to-client traffic. Runs on the channel's event loop;
/// requests run as tasks and hop back to the loop to reply.
final class RPCChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limits: ConnectionLimits
    private let dispatcher: Dispatcher
    private let session: ClientSession
    private let server: SocketServer
    private let logger: Logger
    private var framer: LineFramer
    private let decoder: MessageDecoder

    private var context: ChannelHandlerContext?
    private var inFlight = 0
    private var queuedLines: [[UInt8]] = []
    private var queueHead = 0
    private var readHeld = false
    /// The client shut down its sending side: answer what is pending, then close.
    private var inputClosed = false
    /// While a read is being processed, replies are written and flushed once at read-complete.
    private var inRead = false
    private var needsFlush = false
    /// Running requests by id, so `rpc.cancel` can reach them and duplicates are refused.
    /// `token` tells this request's task from a later request that reuses its id after it was
    /// cancelled: a cancelled task that finishes late must not answer the newer request.
    private var running: [RequestID: (task: Task<Void, Never>, reply: (EncodedResponse?) -> Void, token: UInt64)] = [:]
    private var nextToken: UInt64 = 0

    /// Accepted past ``ConnectionLimits/maxConnections``: only ``ConnectionLimits/reserveMethods``.
    private let reserve: Bool
    /// Unfinished-line bytes this connection has counted in the server's budget.
    private var counted = 0

    init(limits: ConnectionLimits, dispatcher: Dispatcher, session: ClientSession, server: SocketServer, reserve: Bool = false,
         logger: Logger) {
        self.reserve = reserve
        self.server = server
        self.limits = limits
        self.dispatcher = dispatcher
        self.session = session
        self.logger = logger
        framer = LineFramer(maxLineBytes: limits.maxMessageBytes)
        decoder = MessageDecoder(maxBatch: limits.maxBatch)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.partialBytes.subtract(counted, ordering: .relaxed)
        counted = 0
        for entry in running.values { entry.task.cancel() }
        running.removeAll()
        queuedLines.removeAll()
        session.closed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            closeIfDone()
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func closeIfDone() {
        if inputClosed, inFlight == 0, queueHead == queuedLines.count, let context {
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            logger.warning("closing connection: reply buffer over \(limits.maxReplyBuffer) bytes (client not reading)",
                           metadata: ["client": "\(session.id)"])
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["client": "\(session.id)", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Reading, with backpressure

    func read(context: ChannelHandlerContext) {
        if inFlight >= limits.maxInFlight || queueHead < queuedLines.count {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let events = buffer.withUnsafeReadableBytes { framer.feed($0) }
        // The budget of unfinished lines across all connections: the one holding a large
        // unfinished line when it is spent is told and closed.
        let pending = framer.bufferedCount
        let total = server.partialBytes.add(pending - counted, ordering: .relaxed).newValue
        counted = pending
        if pending >= limits.partialLineFloor, total > limits.partialLineBudget {
            logger.warning("closing connection: the budget of unfinished lines is spent",
                           metadata: ["client": "\(session.id)", "pending": "\(pending)", "total": "\(total)"])
            let error = RPCError(.limitReached, "closing this connection: unfinished lines across all connections exceed \(limits.partialLineBudget) bytes, and this one holds \(pending)",
                                 data: ["reason": "partial_line_budget", "limit": .int(Int64(limits.partialLineBudget))])
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: Message.response(Response(id: .null, error: error)).line)))
                .whenComplete { _ in context.close(promise: nil) }
            return
        }
        inRead = true
        defer { inRead = false }
        for event in events {
            switch event {
            case .tooLarge:
                writeLine(EncodedResponse(Response(id: .null, error: .messageTooLarge)))
            case .line(let line):
                if inFlight >= limits.maxInFlight || queueHead < queuedLines.count {
                    queuedLines.append(line)
                } else {
                    process(line)
                }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    private func drainQueue() {
        while queueHead < queuedLines.count, inFlight < limits.maxInFlight {
            let line = queuedLines[queueHead]
            queueHead += 1
            process(line)
        }
        if queueHead == queuedLines.count {
            queuedLines.removeAll(keepingCapacity: true)
            queueHead = 0
        }
        if readHeld, inFlight < limits.maxInFlight, queueHead == queuedLines.count, let context {
            readHeld = false
            context.read()
        }
    }

    // MARK: Messages

    private func process(_ line: [UInt8]) {
        switch decoder.decode(line: line) {
        case .single(let decoded):
            handle(decoded) { [self] response in
                if let response { writeLine(response) }
            }
        case .batch(let entries):
            let collector = BatchResponses(expected: entries.count) { [self] responses in
                if !responses.isEmpty { writeBatch(responses) }
            }
            for entry in entries {
                handle(entry) { collector.add($0) }
            }
        }
    }

    /// Handles one decoded entry; `reply` is called exactly once, with nil for no reply.
    private func handle(_ decoded: Decoded, reply: @escaping (EncodedResponse?) -> Void) {
        switch decoded {
        case .invalid(let id, let error):
            reply(EncodedResponse(Response(id: id ?? .null, error: error)))
        case .message(.notification(let notification)):
            if notification.method == "rpc.cancel" { cancel(notification) }
            // Other notifications are accepted and, by the spec, never answered.
            reply(nil)
        case .message(.response(let response)):
            if !session.deliver(response) {
                logger.debug("response to unknown request ignored", metadata: ["client": "\(session.id)", "id": "\(response.id)"])
            }
            reply(nil)
        case .message(.request(let request)) where reserve && !ConnectionLimits.reserveMethods.contains(request.method):
            reply(EncodedResponse(Response(id: request.id, error: RPCError(
                .limitReached, "the daemon holds as many connections as it serves in full; this one was let in to keep the person in control and may only call \(ConnectionLimits.reserveMethods.sorted().joined(separator: ", "))",
                data: ["reason": "reserve_connection", "method": .string(request.method)]))))
        case .message(.request(let request)) where request.method == RPCCancel.name:
            // Cancelling is a notification; a request for it would itself need an answer.
            reply(EncodedResponse(Response(id: request.id, error: .invalidRequest("rpc.cancel is a notification: send it without an id"))))
        case .message(.request(let request)):
            start(request, reply: reply)
        }
    }

    private func start(_ request: Request, reply: @escaping (EncodedResponse?) -> Void) {
        guard running[request.id] == nil else {
            reply(EncodedResponse(Response(id: request.id, error: .invalidRequest("id \(request.id) is already in use by a pending request"))))
            return
        }
        guard let eventLoop = context?.eventLoop else { return }
        if let result = dispatcher.dispatchInline(request, session: session) {
            reply(EncodedResponse(Response(id: request.id, result: result)))
            return
        }
        inFlight += 1
        server.inFlight.add(1, ordering: .relaxed)
        let dispatcher = self.dispatcher
        let session = self.session
        let loopBound = NIOLoopBound((self, 0), eventLoop: eventLoop)
        nextToken &+= 1
        let token = nextToken
        // The task is registered before it can finish: it hops back to this loop to complete.
        let task = Task {
            let result = await dispatcher.dispatch(request, session: session)
            // Written here, off the event loop: a large reply would otherwise stall every
            // connection on the loop while it is encoded.
            let response = EncodedResponse(id: request.id, result: result)
            eventLoop.execute {
                loopBound.value.0.finish(request.id, token: token, response: response)
            }
        }
        running[request.id] = (task, reply, token)
    }

    private func finish(_ id: RequestID, token: UInt64, response: EncodedResponse) {
        inFlight -= 1
        server.inFlight.subtract(1, ordering: .relaxed)
        if let loop = context?.eventLoop { server.requestFinished(on: loop) }
        // Already answered (cancelled) requests are dropped here, also when a newer request
        // has taken their id meanwhile (it is answered by its own task).
        if let entry = running[id], entry.token == token {
            running[id] = nil
            entry.reply(response)
        }
        drainQueue()
        closeIfDone()
    }

    private func cancel(_ notification: Notification) {
        guard let raw = notification.params?["id"], let id = RequestID(json: raw),
              let entry = running.removeValue(forKey: id) else { return }
        entry.task.cancel()
        entry.reply(EncodedResponse(Response(id: id, error: .cancelled)))
        // inFlight is released when the task finishes, so a cancelled request still counts
        // against the bound until its handler has actually stopped.
    }

    // MARK: Writing

    private func writeLine(_ response: EncodedResponse) {
        writeBytes(response.object, newline: true)
    }

    /// A batch's answer: its responses as one JSON array (the same text as writing the array of
    /// their values).
    private func writeBatch(_ responses: [EncodedResponse]) {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        bytes.reserveCapacity(responses.reduce(2) { $0 + $1.object.count + 1 })
        for (index, response) in responses.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += response.object
        }
        bytes.append(UInt8(ascii: "]"))
        writeBytes(bytes, newline: true)
    }

    private func writeBytes(_ bytes: [UInt8], newline: Bool) {
        guard let context, context.channel.isActive else { return }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count + 1)
        buffer.writeBytes(bytes)
        if newline { buffer.writeInteger(UInt8(0x0A)) }
        if session.closeAfterReply {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        if inRead {
            context.write(wrapOutboundOut(buffer), promise: nil)
            needsFlush = true
        } else {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }
}

/// One response written as a JSON object (no newline): a line of its own or an element of a
/// batch's array.
struct EncodedResponse: Sendable {
    let object: [UInt8]

    init(_ response: Response) {
        object = JSONWriter.bytes(Message.response(response).json)
    }

    init(id: RequestID, result: Result<MethodResult, RPCError>) {
        switch result {
        case .success(.value(let value)): self.init(Response(id: id, result: .success(value)))
        case .success(.encoded(let text)): self.init(object: Message.responseObject(id: id, result: text))
        case .failure(let error): self.init(Response(id: id, error: error))
        }
    }

    private init(object: [UInt8]) { self.object = object }
}

/// Collects the responses of one batch and delivers them together (event-loop confined).
private final class BatchResponses {
    private var remaining: Int
    private var responses: [EncodedResponse] = []
    private let done: ([EncodedResponse]) -> Void

    init(expected: Int, done: @escaping ([EncodedResponse]) -> Void) {
        remaining = expected
        self.done = done
    }

    func add(_ response: EncodedResponse?) {
        if let response { responses.append(response) }
        remaining -= 1
        if remaining == 0 { done(responses) }
    }
}

/// Sends a session's server-initiated traffic through its channel (thread-safe).
struct ChannelOutbound: ConnectionOutbound {
    let channel: any Channel

    func send(_ line: [UInt8]) {
        var buffer = channel.allocator.buffer(capacity: line.count)
        buffer.writeBytes(line)
        channel.writeAndFlush(buffer, promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }
}
