#if canImport(Glibc)
import Glibc
#endif
import CLinux
public import JSONRPC

/// A blocking Unix-socket client that speaks raw bytes, for protocol conformance and abuse tests.
public final class RawConnection: @unchecked Sendable {
    public let fd: Int32
    private var buffer: [UInt8] = []
    private var isClosed = false

    public init(path: String, receiveTimeout: Double = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        guard deskgate_unix_connect(fd, path) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw TestFailure("connect \(path): \(String(cString: strerror(e)))")
        }
        setReceiveTimeout(receiveTimeout)
    }

    public func setReceiveTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends bytes as they are; returns false if the peer has closed.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; return false }
            offset += n
        }
        return true
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends one JSON value as a line.
    @discardableResult
    public func send(json: JSONValue) -> Bool { send(JSONWriter.bytes(json) + [0x0A]) }

    /// Reads the next line (without the newline); nil on EOF or timeout.
    public func readLine() -> [UInt8]? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads the next line as JSON.
    public func readJSON() throws -> JSONValue {
        guard let line = readLine() else { throw TestFailure("no reply (EOF or timeout)") }
        return try JSONParser.parse(line)
    }

    /// Every line until the peer closes. `closed` is false if the receive timeout passed first;
    /// `partial` holds bytes after the last newline (a reply cut short).
    public func readUntilClose() -> (lines: [[UInt8]], closed: Bool, partial: [UInt8]) {
        var lines: [[UInt8]] = []
        while true {
            while let newline = buffer.firstIndex(of: 0x0A) {
                lines.append(Array(buffer[..<newline]))
                buffer.removeSubrange(...newline)
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n == 0 || (n < 0 && errno == ECONNRESET) {
                let partial = buffer
                buffer.removeAll()
                return (lines, true, partial)
            }
            if n < 0 { return (lines, false, buffer) }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// True if the peer closed the connection (EOF) within the receive timeout.
    public func waitForClose() -> Bool {
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    deinit { close() }
}
