/// Splits a byte stream into newline-terminated frames with a size bound.
///
/// A line longer than `maxLineBytes` produces one `.tooLarge` event; the rest of that line is
/// discarded without being buffered and framing resumes after its newline. Pure state machine,
/// shared by the server's channel handler and the client.
public struct LineFramer: Sendable {
    public enum Event: Sendable, Equatable {
        case line([UInt8])
        case tooLarge
    }

    public let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var discarding = false

    public init(maxLineBytes: Int = 1 << 20) {
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes held while waiting for the end of a line.
    public var bufferedCount: Int { buffer.count }

    /// Feeds bytes and returns the complete frames they finish, in order.
    /// Empty lines (and a lone `\r` before `\n`) are skipped.
    public mutating func feed<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [Event] {
        var events: [Event] = []
        var start = bytes.startIndex
        while start != bytes.endIndex {
            guard let newline = bytes[start...].firstIndex(of: 0x0A) else {
                let rest = bytes[start...]
                if discarding { return events }
                if buffer.count + rest.count > maxLineBytes {
                    buffer.removeAll(keepingCapacity: false)
                    discarding = true
                    events.append(.tooLarge)
                } else {
                    buffer.append(contentsOf: rest)
                }
                return events
            }
            let chunk = bytes[start..<newline]
            start = bytes.index(after: newline)
            if discarding {
                discarding = false
                continue
            }
            if buffer.count + chunk.count > maxLineBytes {
                buffer.removeAll(keepingCapacity: false)
                events.append(.tooLarge)
                continue
            }
            var line: [UInt8]
            if buffer.isEmpty {
                line = Array(chunk)
            } else {
                buffer.append(contentsOf: chunk)
                line = buffer
                buffer.removeAll(keepingCapacity: true)
            }
            if line.last == 0x0D { line.removeLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            events.append(.line(line))
        }
        return events
    }
}
