/// Writes JSON text as UTF-8 bytes, compact, optionally with sorted keys (the canonical form the
/// audit chain hashes: sorted keys, no insignificant whitespace, minimal escaping).
public struct JSONWriter {
    public var bytes: [UInt8]
    public let sortedKeys: Bool

    public init(sortedKeys: Bool = false, capacity: Int = 256) {
        self.sortedKeys = sortedKeys
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public static func bytes(_ value: JSONValue, sortedKeys: Bool = false) -> [UInt8] {
        var writer = JSONWriter(sortedKeys: sortedKeys)
        writer.write(value)
        return writer.bytes
    }

    public static func string(_ value: JSONValue, sortedKeys: Bool = false) -> String {
        String(decoding: bytes(value, sortedKeys: sortedKeys), as: UTF8.self)
    }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let b): append(b ? "true" : "false")
        case .int(let i): writeInt(i)
        case .double(let d): writeDouble(d)
        case .string(let s): writeString(s)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                write(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            let members = sortedKeys ? object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } : object.members
            for (i, member) in members.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                writeString(member.key)
                bytes.append(UInt8(ascii: ":"))
                write(member.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    @inline(__always) mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Appends JSON text as is: punctuation and keys of writers that emit JSON without building a
    /// ``JSONValue`` (the caller vouches that it is valid JSON in context).
    @inline(__always) public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends already-encoded JSON text as is (see ``raw(_:)-(StaticString)``).
    @inline(__always) public mutating func raw(_ encoded: [UInt8]) { bytes.append(contentsOf: encoded) }

    /// Writes an integer as `String(i)` would, without making the string.
    public mutating func writeInt(_ i: Int64) {
        if i >= 0, i < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(i))
            return
        }
        if i < 0 { bytes.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &digits) { buffer in
            var value = i.magnitude
            var position = buffer.count
            repeat {
                position -= 1
                buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value != 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[position...]))
        }
    }

    public mutating func writeDouble(_ d: Double) {
        guard d.isFinite else { append("null"); return }
        if d.rounded() == d, abs(d) < 1e15 {
            writeInt(Int64(d))
            append(".0")
        } else {
            append(d.description)
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes a JSON string literal. Control characters are escaped; everything else is raw UTF-8.
    public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { writeString(utf8: $0) }
    }

    /// Writes a JSON string literal from UTF-8 bytes (valid UTF-8, as a Swift string holds):
    /// runs that need no escape are copied at once.
    public mutating func writeString(utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        for index in 0..<utf8.count {
            let b = utf8[index]
            // Fast test: printable ASCII other than quote and backslash, or any byte >= 0x80.
            if b >= 0x20, b != UInt8(ascii: "\""), b != UInt8(ascii: "\\"), b != 0x7F { continue }
            if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
            runStart = index + 1
            switch b {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\\"))
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            default:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(Self.hex[Int(b >> 4)])
                bytes.append(Self.hex[Int(b & 0xF)])
            }
        }
        if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A string made safe to quote inside a one-line message: control characters escaped, bounded.
    public static func escapedForMessage(_ s: String, limit: Int = 80) -> String {
        var out = ""
        for scalar in s.unicodeScalars.prefix(limit) {
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x202A...0x202E).contains(scalar.value)
                || (0x2066...0x2069).contains(scalar.value)
            {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        if s.unicodeScalars.count > limit { out += "…" }
        return out
    }
}
