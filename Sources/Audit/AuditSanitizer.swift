import Crypto
import JSONRPC

/// Makes strings from apps and clients safe to store and show: control characters (C0, DEL, C1),
/// bidi overrides and isolates (U+202A–U+202E, U+2066–U+2069), directional marks and line/paragraph
/// separators become visible `\u{…}` text, and long strings are cut to a bound with the length and
/// SHA-256 of the whole appended, so a reviewer can still match the original.
public enum AuditSanitizer {
    /// Longest string kept whole, in Unicode scalars after escaping.
    public static let maxScalars = 1024
    /// Longest object key kept whole.
    static let maxKeyScalars = 128

    static func isUnsafe(_ v: UInt32) -> Bool {
        v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x061C || v == 0x200E || v == 0x200F
            || (0x2028...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0xFEFF
    }

    /// The escaped, bounded form of `s`.
    public static func sanitize(_ s: String, limit: Int = maxScalars) -> String {
        var needsWork = false
        var count = 0
        for scalar in s.unicodeScalars {
            count += 1
            if count > limit || isUnsafe(scalar.value) { needsWork = true; break }
        }
        if !needsWork { return s }
        var out = String.UnicodeScalarView()
        var emitted = 0
        var truncated = false
        for scalar in s.unicodeScalars {
            if isUnsafe(scalar.value) {
                let escape = "\\u{\(String(scalar.value, radix: 16))}"
                if emitted + escape.unicodeScalars.count > limit { truncated = true; break }
                out.append(contentsOf: escape.unicodeScalars)
                emitted += escape.unicodeScalars.count
            } else {
                if emitted + 1 > limit { truncated = true; break }
                out.append(scalar)
                emitted += 1
            }
        }
        var result = String(out)
        if truncated {
            let digest = SHA256.hash(data: Array(s.utf8)).hexString
            result += "…[truncated: \(s.utf8.count) bytes, sha256 \(digest)]"
        }
        return result
    }

    /// Sanitizes every string and key inside `value`.
    public static func sanitize(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(sanitize(s))
        case .array(let items): return .array(items.map(sanitize))
        case .object(let object):
            var out = JSONObject()
            for member in object.members {
                out[sanitize(member.key, limit: maxKeyScalars)] = sanitize(member.value)
            }
            return .object(out)
        default: return value
        }
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hex.
    var hexString: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension SHA256.Digest {
    var hexString: String { Array(self).hexString }
}
