#if canImport(Glibc)
import Glibc
#endif
import CLinux
import JSONRPC

/// A minimal blocking socket client for benchmarks: no tasks, no continuations, just syscalls,
/// so the numbers measure the daemon rather than the client library.
final class BenchSocket: @unchecked Sendable {  // each instance is used by one thread
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var end = 0

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard deskgate_unix_connect(fd, path) == 0 else { throw BenchError("cannot connect to \(path): \(String(cString: strerror(errno)))") }
    }

    /// Wraps a connected socket (for example one end of a socketpair).
    init(connected fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Reads one line; returns its length (the line itself is not needed for counting).
    func readLine(into line: inout [UInt8]) -> Bool {
        while true {
            if let newline = buffer[start..<end].firstIndex(of: 0x0A) {
                line.removeAll(keepingCapacity: true)
                line.append(contentsOf: buffer[start..<newline])
                start = newline + 1
                return true
            }
            if start > 0 {
                // Move the partial line to the front in place (replaceSubrange with a slice of
                // the same array would copy the whole buffer on every read).
                let (from, count) = (start, end - start)
                buffer.withUnsafeMutableBytes { raw in
                    if count > 0 { memmove(raw.baseAddress!, raw.baseAddress! + from, count) }
                }
                end = count
                start = 0
            }
            if end == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + end, $0.count - end, 0) }
            if n <= 0 { return false }
            end += n
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return sorted[index]
}

func format(_ value: Double, _ digits: Int = 1) -> String {
    let scale = pow(10.0, Double(digits))
    return String((value * scale).rounded() / scale)
}
