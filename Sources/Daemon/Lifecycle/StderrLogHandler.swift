#if canImport(Glibc)
import Glibc
#endif
public import Logging

/// Logs one line per message to stderr. Under journald (`JOURNAL_STREAM` set) each line starts
/// with a `<N>` syslog priority prefix, which journald turns into the entry's priority; otherwise
/// lines carry a UTC timestamp.
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let journald: Bool

    public init(label: String, level: Logger.Level, environment: [String: String]) {
        self.label = label
        logLevel = level
        journald = environment["JOURNAL_STREAM"] != nil
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.quote("\($0.value)"))" }.joined(separator: " ")
        let message = Self.oneLine("\(event.message)")
        let line: String
        if journald {
            line = "<\(Self.priority(event.level))>\(message)\(fields.isEmpty ? "" : " " + fields)\n"
        } else {
            line = "\(Self.timestamp()) \(event.level.rawValue.uppercased()) \(label): \(message)\(fields.isEmpty ? "" : " " + fields)\n"
        }
        line.utf8CString.withUnsafeBufferPointer { buffer in
            _ = write(2, buffer.baseAddress, buffer.count - 1)
        }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Keeps every message on one line (app-provided strings may hold newlines or escapes).
    static func oneLine(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0..<0x20, 0x7F, 0x202A...0x202E, 0x2066...0x2069: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func quote(_ s: String) -> String {
        let clean = oneLine(s)
        return clean.contains(" ") || clean.isEmpty ? "\"\(clean)\"" : clean
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var tm = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &tm)
        let ms = now.tv_nsec / 1_000_000
        func pad(_ v: Int32, _ n: Int = 2) -> String { String(repeating: "0", count: max(0, n - String(v).count)) + String(v) }
        return "\(tm.tm_year + 1900)-\(pad(tm.tm_mon + 1))-\(pad(tm.tm_mday))T\(pad(tm.tm_hour)):\(pad(tm.tm_min)):\(pad(tm.tm_sec)).\(pad(Int32(ms), 3))Z"
    }
}
