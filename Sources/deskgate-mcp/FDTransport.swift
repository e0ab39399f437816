#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import JSONRPC
import Logging
import MCP

/// MCP stdio transport over two file descriptors, with blocking I/O off the cooperative pool.
///
/// The SDK's `StdioTransport` sets stdin non-blocking (which also changes the host's end of a
/// shared pipe description) and polls it every 10 ms while idle. Here one dedicated thread
/// blocks in `read(2)` and yields newline-delimited frames, and writes go through a serial queue,
/// so an idle server does not wake up and frames never interleave. A line that is not JSON is
/// answered here with a parse error whose id is null (the SDK would invent a random id), and
/// ``tracker`` follows requests until their responses are written.
actor FDTransport: Transport {
    nonisolated let logger: Logger
    private let input: Int32
    private let output: Int32
    private let maxFrameBytes: Int
    private let frames: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private let writeQueue = DispatchQueue(label: "deskgate-mcp.stdout")
    private var started = false
    let tracker = RequestTracker()
    static let maxDepth = 512

    init(input: Int32, output: Int32, maxFrameBytes: Int = 64 << 20, logger: Logger) {
        self.input = input
        self.output = output
        self.maxFrameBytes = maxFrameBytes
        self.logger = logger
        (frames, continuation) = AsyncThrowingStream.makeStream(of: Data.self, throwing: (any Error).self)
    }

    func connect() async throws {
        guard !started else { return }
        started = true
        let output = output
        let writeQueue = writeQueue
        let reader = FrameReader(
            fd: input, maxFrameBytes: maxFrameBytes, continuation: continuation, tracker: tracker,
            rejectUnparsable: { line in
                let reply: JSONValue = ["jsonrpc": "2.0", "id": nil, "error": ["code": -32700, "message": .string("Parse error: \(line)")]]
                writeQueue.async { try? Self.writeAll(fd: output, JSONWriter.bytes(reply) + [UInt8(ascii: "\n")]) }
            },
            logger: logger)
        let thread = Thread { reader.run() }
        thread.name = "deskgate-mcp-stdin"
        thread.start()
    }

    func disconnect() async {
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        let frame = [UInt8](data) + [UInt8(ascii: "\n")]
        let fd = output
        let tracker = tracker
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            writeQueue.async {
                do {
                    try Self.writeAll(fd: fd, frame)
                    if let sent = try? JSONParser.parse(frame.dropLast(), maxDepth: Self.maxDepth) { tracker.sent(sent) }
                    done.resume()
                } catch {
                    done.resume(throwing: error)
                }
            }
        }
    }

    func receive() -> AsyncThrowingStream<Data, any Error> { frames }

    /// Writes every byte, waiting in `poll` if the descriptor happens to be non-blocking.
    fileprivate static func writeAll(fd: Int32, _ bytes: [UInt8]) throws(StdioError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if n >= 0 {
                offset += n
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN: waitFor(fd: fd, events: Int16(POLLOUT))
            default: throw StdioError(operation: "write(stdout)", errno: errno)
            }
        }
    }

    fileprivate static func waitFor(fd: Int32, events: Int16) {
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        _ = poll(&pfd, 1, -1)
    }
}

/// The body of the stdin thread: blocking reads, split into lines, one frame per line.
private struct FrameReader: Sendable {
    let fd: Int32
    let maxFrameBytes: Int
    let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    let tracker: RequestTracker
    /// Answers a line that is not JSON (with the parser's complaint).
    let rejectUnparsable: @Sendable (String) -> Void
    let logger: Logger

    func run() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var pending: [UInt8] = []
        var discarding = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    FDTransport.waitFor(fd: fd, events: Int16(POLLIN))
                    continue
                }
                logger.error("stdin read failed: \(String(cString: strerror(errno)))")
                break
            }
            var start = 0
            for i in 0..<n where buffer[i] == UInt8(ascii: "\n") {
                if !discarding { pending.append(contentsOf: buffer[start..<i]) }
                emit(pending, discarded: discarding)
                pending.removeAll(keepingCapacity: true)
                discarding = false
                start = i + 1
            }
            if !discarding { pending.append(contentsOf: buffer[start..<n]) }
            if pending.count > maxFrameBytes {
                discarding = true
                pending.removeAll()
            }
        }
        logger.debug("stdin closed")
        continuation.finish()
    }

    private func emit(_ line: [UInt8], discarded: Bool) {
        if discarded {
            logger.error("dropped an MCP frame longer than \(maxFrameBytes) bytes")
            return
        }
        var line = line[...]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { return }
        do {
            tracker.received(try JSONParser.parse(line, maxDepth: FDTransport.maxDepth))
        } catch {
            logger.warning("input line is not JSON: \(error)")
            rejectUnparsable("\(error)")
            return
        }
        continuation.yield(Data(line))
    }
}
