#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import JSONRPC
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

/// RFC 3339 UTC timestamps for listings and grant files (``RFC3339`` with `Date`s).
enum Timestamp {
    /// `2026-11-25T01:09:52Z`, or with milliseconds `2026-11-25T01:09:52.123Z`.
    static func rfc3339(_ date: Date, milliseconds: Bool = false) -> String {
        let interval = date.timeIntervalSince1970
        let micros = milliseconds ? Int64((interval * 1000).rounded()) * 1000 : Int64(interval.rounded(.down)) * 1_000_000
        return RFC3339.format(micros: micros, fractionDigits: milliseconds ? 3 : 0)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil if malformed.
    static func parse(_ text: String) -> Date? {
        RFC3339.parse(text).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) }
    }
}
