#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

// Small formatting helpers, so the Broker needs FoundationEssentials only: `String(format:)`,
// `ISO8601DateFormatter` and `NSString` paths live in full Foundation, which drags
// FoundationInternationalization, ICU and libstdc++ (~7 MB of resident pages) into the daemon.

enum Text {
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lowercase hex, two digits a byte.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `value` in decimal, zero-padded to `width` digits.
    static func padded(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// printf-style formatting through the C library (for numbers in benchmark summaries).
    static func format(_ format: String, _ arguments: any CVarArg...) -> String {
        var size = 256
        while true {
            var buffer = [CChar](repeating: 0, count: size)
            let written = withVaList(arguments) { vsnprintf(&buffer, size, format, $0) }
            if written < 0 { return format }
            if Int(written) < size { return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            size = Int(written) + 1
        }
    }

    /// The last path component (`a/b/c.toml` → `c.toml`).
    static func lastPathComponent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/"), trimmed != "/" else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// The path without its last component (`a/b/c.toml` → `a/b`, `c.toml` → ``, `/c` → `/`).
    static func deletingLastPathComponent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        var parent = trimmed[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }
}

/// RFC 3339 UTC timestamps for listings and grant files.
enum Timestamp {
    /// `2026-11-25T01:09:52Z`, or with milliseconds `2026-11-25T01:09:52.123Z`.
    static func rfc3339(_ date: Date, milliseconds: Bool = false) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = Int(interval.rounded(.down))
        var millis = Int(((interval - Double(seconds)) * 1000).rounded())
        if millis == 1000 { seconds += 1; millis = 0 }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var text = Text.padded(Int(parts.tm_year) + 1900, 4) + "-" + Text.padded(Int(parts.tm_mon) + 1, 2) + "-"
            + Text.padded(Int(parts.tm_mday), 2) + "T" + Text.padded(Int(parts.tm_hour), 2) + ":"
            + Text.padded(Int(parts.tm_min), 2) + ":" + Text.padded(Int(parts.tm_sec), 2)
        if milliseconds { text += "." + Text.padded(millis, 3) }
        return text + "Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil if malformed.
    static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        func digits(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= b.count else { return nil }
            var value = 0
            for i in start..<start + count {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int(b[i] - 48)
            }
            return value
        }
        guard b.count >= 20, let year = digits(0, 4), b[4] == UInt8(ascii: "-"), let month = digits(5, 2),
              b[7] == UInt8(ascii: "-"), let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
              let second = digits(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var pos = 19
        var fraction = 0.0
        if pos < b.count, b[pos] == UInt8(ascii: ".") {
            pos += 1
            var scale = 0.1
            let start = pos
            while pos < b.count, b[pos] >= 48, b[pos] <= 57 {
                fraction += Double(b[pos] - 48) * scale
                scale /= 10
                pos += 1
            }
            guard pos > start else { return nil }
        }
        guard pos < b.count else { return nil }
        var offset = 0
        switch b[pos] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard pos + 1 == b.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard pos + 6 == b.count, let oh = digits(pos + 1, 2), b[pos + 3] == UInt8(ascii: ":"), let om = digits(pos + 4, 2),
                  oh < 24, om < 60
            else { return nil }
            offset = (oh * 60 + om) * 60 * (b[pos] == UInt8(ascii: "-") ? -1 : 1)
        default:
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        guard seconds != -1 || (year == 1969 && month == 12 && day == 31) else { return nil }
        return Date(timeIntervalSince1970: Double(Int(seconds) - offset) + fraction)
    }
}
