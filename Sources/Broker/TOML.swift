#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

// A strict parser for the TOML subset deskgate's policy files use: `[table]`, `[[array]]`,
// `key = value` with bare or quoted keys, basic and literal strings, decimal integers,
// booleans, arrays and offset date-times. Anything else (floats, inline tables, dotted keys,
// multi-line strings, local dates) is rejected with a line number rather than guessed at.

/// A parse error naming the file and the 1-based line.
public struct TOMLError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file):\(line): \(message)" }
}

/// A parsed TOML value. Every value remembers the line it started on, for later validation errors.
public indirect enum TOMLValue: Sendable, Hashable {
    case string(String)
    case integer(Int64)
    case boolean(Bool)
    case dateTime(Date)
    case array([TOMLValue])
    case table(TOMLTable)
    /// `[[name]]` tables, in file order.
    case tableArray([TOMLTable])

    /// Type name as TOML documents call it, for error messages.
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .boolean: "boolean"
        case .dateTime: "date-time"
        case .array: "array"
        case .table: "table"
        case .tableArray: "array of tables"
        }
    }
}

/// One `key = value` with the line of its key.
public struct TOMLEntry: Sendable, Hashable {
    public var value: TOMLValue
    public var line: Int
}

/// A table: keys in file order, each with its value and line.
public struct TOMLTable: Sendable, Hashable {
    /// Line of the table header (0 for the root table).
    public var line: Int
    public private(set) var keys: [String] = []
    public private(set) var entries: [String: TOMLEntry] = [:]

    public init(line: Int) { self.line = line }

    public subscript(key: String) -> TOMLEntry? { entries[key] }

    mutating func insert(_ key: String, _ entry: TOMLEntry) {
        if entries[key] == nil { keys.append(key) }
        entries[key] = entry
    }
}

/// Parses the policy TOML subset.
public enum TOMLParser {
    /// Largest accepted document; 10,000 rules take about 1.5 MB.
    public static let maxBytes = 16 << 20
    /// Arrays may nest this deep.
    static let maxDepth = 16

    /// Parses a document. `file` is used in error messages only.
    public static func parse(_ bytes: [UInt8], file: String) throws(TOMLError) -> TOMLTable {
        guard bytes.count <= maxBytes else {
            throw TOMLError(file: file, line: 1, message: "file is larger than \(maxBytes) bytes")
        }
        if String(validating: bytes, as: UTF8.self) == nil {
            // Find the line of the first invalid byte for the message.
            var line = 1
            var index = 0
            while index < bytes.count {
                let length = utf8SequenceLength(bytes, at: index)
                if length == 0 { break }
                if bytes[index] == 0x0A { line += 1 }
                index += length
            }
            throw TOMLError(file: file, line: line, message: "file is not valid UTF-8")
        }
        var scanner = Scanner(bytes: bytes, file: file)
        return try scanner.document()
    }

    public static func parse(_ text: String, file: String) throws(TOMLError) -> TOMLTable {
        try parse(Array(text.utf8), file: file)
    }

    /// Length of the valid UTF-8 sequence starting at `index`, or 0 if it is invalid.
    private static func utf8SequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        let b0 = bytes[index]
        let length: Int
        switch b0 {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return 0
        }
        guard index + length <= bytes.count,
              String(validating: bytes[index..<index + length], as: UTF8.self) != nil else { return 0 }
        return length
    }
}

private struct Scanner {
    let bytes: [UInt8]
    let file: String
    var pos = 0
    var line = 1

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    func error(_ message: String, line: Int? = nil) -> TOMLError {
        TOMLError(file: file, line: line ?? self.line, message: message)
    }

    var atEnd: Bool { pos >= bytes.count }
    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }
    func peek(_ offset: Int) -> UInt8? { pos + offset < bytes.count ? bytes[pos + offset] : nil }

    mutating func skipSpaces() {
        while let b = peek, b == 0x20 || b == 0x09 { pos += 1 }
    }

    /// Skips a comment up to (not including) the newline. Control characters other than tab are
    /// not allowed in comments (TOML 1.0).
    mutating func skipComment() throws(TOMLError) {
        guard peek == UInt8(ascii: "#") else { return }
        while let b = peek, b != 0x0A {
            if b == 0x0D, peek(1) == 0x0A { return }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw error("control character in comment") }
            pos += 1
        }
    }

    /// Consumes a newline (LF or CRLF); returns false at end of input.
    mutating func expectLineEnd() throws(TOMLError) {
        skipSpaces()
        try skipComment()
        if atEnd { return }
        if peek == 0x0A {
            pos += 1
            line += 1
            return
        }
        if peek == 0x0D, peek(1) == 0x0A {
            pos += 2
            line += 1
            return
        }
        throw error("unexpected \(describe(peek)) after value; expected end of line")
    }

    /// Skips blank lines, whitespace, newlines and comments (inside arrays and between statements).
    mutating func skipTrivia() throws(TOMLError) {
        while true {
            skipSpaces()
            try skipComment()
            if peek == 0x0A {
                pos += 1
                line += 1
            } else if peek == 0x0D, peek(1) == 0x0A {
                pos += 2
                line += 1
            } else {
                return
            }
        }
    }

    func describe(_ byte: UInt8?) -> String {
        guard let byte else { return "end of file" }
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        if byte == 0x0D { return "carriage return" }
        return "byte 0x" + Text.hex([byte]).uppercased()
    }

    // MARK: Document

    mutating func document() throws(TOMLError) -> TOMLTable {
        var root = TOMLTable(line: 0)
        // Where the current statements go: nil = root, else (name, isArray).
        var current: (name: String, isArray: Bool)?
        var currentTable = TOMLTable(line: 0)

        func flush(_ root: inout TOMLTable, _ current: (name: String, isArray: Bool)?, _ table: TOMLTable) {
            guard let current else { return }
            if current.isArray {
                if case .tableArray(var tables)? = root[current.name]?.value {
                    tables.append(table)
                    root.insert(current.name, TOMLEntry(value: .tableArray(tables), line: root[current.name]!.line))
                } else {
                    root.insert(current.name, TOMLEntry(value: .tableArray([table]), line: table.line))
                }
            } else {
                root.insert(current.name, TOMLEntry(value: .table(table), line: table.line))
            }
        }

        while true {
            try skipTrivia()
            guard let b = peek else { break }
            if b == UInt8(ascii: "[") {
                let headerLine = line
                pos += 1
                let isArray = peek == UInt8(ascii: "[")
                if isArray { pos += 1 }
                skipSpaces()
                let name = try key()
                skipSpaces()
                if peek == UInt8(ascii: ".") { throw error("dotted table names are not supported") }
                guard peek == UInt8(ascii: "]") else { throw error("expected ']' to close the table header") }
                pos += 1
                if isArray {
                    guard peek == UInt8(ascii: "]") else { throw error("expected ']]' to close the array-of-tables header") }
                    pos += 1
                }
                try expectLineEnd()
                // Close the previous table before opening the next.
                if current != nil {
                    flush(&root, current, currentTable)
                } else {
                    // Root statements already went straight into root.
                }
                if let existing = root[name] {
                    switch (existing.value, isArray) {
                    case (.tableArray, true): break
                    case (.tableArray, false):
                        throw error("'\(name)' is an array of tables (line \(existing.line)); write [[\(name)]]", line: headerLine)
                    case (.table, _):
                        throw error("table '\(name)' is already defined on line \(existing.line)", line: headerLine)
                    default:
                        throw error("'\(name)' is already defined as a value on line \(existing.line)", line: headerLine)
                    }
                }
                current = (name, isArray)
                currentTable = TOMLTable(line: headerLine)
                continue
            }
            let keyLine = line
            let name = try key()
            skipSpaces()
            if peek == UInt8(ascii: ".") { throw error("dotted keys are not supported") }
            guard peek == UInt8(ascii: "=") else { throw error("expected '=' after key '\(name)'") }
            pos += 1
            skipSpaces()
            let value = try self.value(depth: 0)
            try expectLineEnd()
            if current == nil {
                if let existing = root[name] {
                    throw error("key '\(name)' is already defined on line \(existing.line)", line: keyLine)
                }
                root.insert(name, TOMLEntry(value: value, line: keyLine))
            } else {
                if let existing = currentTable[name] {
                    throw error("key '\(name)' is already defined on line \(existing.line)", line: keyLine)
                }
                currentTable.insert(name, TOMLEntry(value: value, line: keyLine))
            }
        }
        flush(&root, current, currentTable)
        return root
    }

    // MARK: Keys

    static func isBareKeyByte(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
    }

    mutating func key() throws(TOMLError) -> String {
        guard let b = peek else { throw error("expected a key, found end of file") }
        if b == UInt8(ascii: "\"") {
            if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") { throw error("multi-line strings cannot be keys") }
            return try basicString()
        }
        if b == UInt8(ascii: "'") { return try literalString() }
        let start = pos
        while let c = peek, Self.isBareKeyByte(c) { pos += 1 }
        guard pos > start else { throw error("expected a key, found \(describe(peek))") }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    // MARK: Values

    mutating func value(depth: Int) throws(TOMLError) -> TOMLValue {
        guard let b = peek else { throw error("expected a value, found end of file") }
        switch b {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") { throw error("multi-line strings are not supported") }
            return .string(try basicString())
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") { throw error("multi-line strings are not supported") }
            return .string(try literalString())
        case UInt8(ascii: "["):
            return try array(depth: depth + 1)
        case UInt8(ascii: "{"):
            throw error("inline tables are not supported; use a [table]")
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            return try boolean()
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try numberOrDate()
        default:
            throw error("expected a value, found \(describe(b))")
        }
    }

    mutating func boolean() throws(TOMLError) -> TOMLValue {
        if matchWord("true") { return .boolean(true) }
        if matchWord("false") { return .boolean(false) }
        throw error("expected a value (strings need quotes)")
    }

    mutating func matchWord(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard pos + count <= bytes.count else { return false }
        let matches = word.withUTF8Buffer { buffer in
            for i in 0..<count where bytes[pos + i] != buffer[i] { return false }
            return true
        }
        guard matches else { return false }
        if pos + count < bytes.count, Self.isBareKeyByte(bytes[pos + count]) { return false }
        pos += count
        return true
    }

    mutating func array(depth: Int) throws(TOMLError) -> TOMLValue {
        guard depth <= TOMLParser.maxDepth else { throw error("arrays nested deeper than \(TOMLParser.maxDepth)") }
        pos += 1  // [
        var items: [TOMLValue] = []
        while true {
            try skipTrivia()
            guard let b = peek else { throw error("unterminated array") }
            if b == UInt8(ascii: "]") {
                pos += 1
                return .array(items)
            }
            items.append(try value(depth: depth))
            try skipTrivia()
            guard let c = peek else { throw error("unterminated array") }
            if c == UInt8(ascii: ",") {
                pos += 1
            } else if c != UInt8(ascii: "]") {
                throw error("expected ',' or ']' in array, found \(describe(c))")
            }
        }
    }

    // MARK: Strings

    mutating func literalString() throws(TOMLError) -> String {
        pos += 1  // '
        let start = pos
        while true {
            guard let b = peek else { throw error("unterminated string") }
            if b == UInt8(ascii: "'") { break }
            if b == 0x0A || b == 0x0D { throw error("newline in string") }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw error("control character in string") }
            pos += 1
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        pos += 1
        return text
    }

    mutating func basicString() throws(TOMLError) -> String {
        pos += 1  // "
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw error("unterminated string") }
            if b == UInt8(ascii: "\"") {
                pos += 1
                break
            }
            if b == 0x0A || b == 0x0D { throw error("newline in string") }
            if (b < 0x20 && b != 0x09) || b == 0x7F { throw error("control character in string; use an escape") }
            if b != UInt8(ascii: "\\") {
                out.append(b)
                pos += 1
                continue
            }
            pos += 1
            guard let e = peek else { throw error("unterminated string") }
            pos += 1
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "u"): out.append(contentsOf: try unicodeEscape(digits: 4))
            case UInt8(ascii: "U"): out.append(contentsOf: try unicodeEscape(digits: 8))
            default: throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in string")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func unicodeEscape(digits: Int) throws(TOMLError) -> [UInt8] {
        var code: UInt32 = 0
        for _ in 0..<digits {
            guard let b = peek, let digit = Self.hexValue(b) else { throw error("\\u and \\U escapes need \(digits) hex digits") }
            code = code << 4 | UInt32(digit)
            pos += 1
        }
        guard let scalar = Unicode.Scalar(code) else { throw error("escape is not a Unicode scalar value") }
        return Array(String(Character(scalar)).utf8)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    // MARK: Numbers and date-times

    mutating func numberOrDate() throws(TOMLError) -> TOMLValue {
        let start = pos
        // A date starts with four digits and '-'.
        if pos + 4 < bytes.count, (0..<4).allSatisfy({ isDigit(bytes[pos + $0]) }), bytes[pos + 4] == UInt8(ascii: "-") {
            return try dateTime()
        }
        while let b = peek, !(b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == UInt8(ascii: ",")
                              || b == UInt8(ascii: "]") || b == UInt8(ascii: "#")) {
            pos += 1
        }
        let token = Array(bytes[start..<pos])
        guard let value = Self.decimalInteger(token) else {
            let text = String(decoding: token.prefix(40), as: UTF8.self)
            if token.contains(UInt8(ascii: ".")) || token.contains(UInt8(ascii: "e")) || token.contains(UInt8(ascii: "E"))
                || text.hasSuffix("inf") || text.hasSuffix("nan") {
                throw error("floats are not supported: \(text)")
            }
            if text.hasPrefix("0x") || text.hasPrefix("0o") || text.hasPrefix("0b") {
                throw error("only decimal integers are supported: \(text)")
            }
            throw error("invalid integer: \(text)")
        }
        return .integer(value)
    }

    func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// TOML decimal integer: optional sign, no leading zeros, underscores only between digits.
    static func decimalInteger(_ token: [UInt8]) -> Int64? {
        var index = 0
        var negative = false
        if index < token.count, token[index] == UInt8(ascii: "+") || token[index] == UInt8(ascii: "-") {
            negative = token[index] == UInt8(ascii: "-")
            index += 1
        }
        let digitsStart = index
        guard index < token.count else { return nil }
        if token[index] == UInt8(ascii: "0"), token.count > index + 1 { return nil }
        var magnitude: UInt64 = 0
        var previousWasDigit = false
        while index < token.count {
            let b = token[index]
            if b == UInt8(ascii: "_") {
                guard previousWasDigit, index + 1 < token.count, token[index + 1] >= 0x30, token[index + 1] <= 0x39 else { return nil }
                previousWasDigit = false
            } else if b >= 0x30 && b <= 0x39 {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(b - 0x30))
                guard !o1, !o2 else { return nil }
                magnitude = m2
                previousWasDigit = true
            } else {
                return nil
            }
            index += 1
        }
        guard index > digitsStart else { return nil }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    mutating func digits(_ count: Int, _ what: String) throws(TOMLError) -> Int {
        var value = 0
        for _ in 0..<count {
            guard let b = peek, isDigit(b) else { throw error("invalid date-time: expected \(count) digits for \(what)") }
            value = value * 10 + Int(b - 0x30)
            pos += 1
        }
        return value
    }

    mutating func expect(_ c: Character, _ what: String) throws(TOMLError) {
        guard let b = peek, b == c.asciiValue! else { throw error("invalid date-time: expected '\(c)' \(what)") }
        pos += 1
    }

    /// RFC 3339 offset date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`. Local dates and times
    /// are rejected: an expiry must not depend on the machine's time zone.
    mutating func dateTime() throws(TOMLError) -> TOMLValue {
        let year = try digits(4, "the year")
        try expect("-", "after the year")
        let month = try digits(2, "the month")
        try expect("-", "after the month")
        let day = try digits(2, "the day")
        guard let sep = peek, sep == UInt8(ascii: "T") || sep == UInt8(ascii: "t") || (sep == 0x20 && peek(1).map(isDigit) == true) else {
            throw error("local dates are not supported; write a full date-time with an offset, e.g. \(Text.padded(year, 4))-\(Text.padded(month, 2))-\(Text.padded(day, 2))T00:00:00Z")
        }
        pos += 1
        let hour = try digits(2, "the hour")
        try expect(":", "after the hour")
        let minute = try digits(2, "the minute")
        try expect(":", "after the minute")
        let second = try digits(2, "the second")
        var fraction = 0.0
        if peek == UInt8(ascii: ".") {
            pos += 1
            var scale = 0.1
            let start = pos
            while let b = peek, isDigit(b) {
                fraction += Double(b - 0x30) * scale
                scale /= 10
                pos += 1
            }
            guard pos > start else { throw error("invalid date-time: expected digits after '.'") }
        }
        var offsetSeconds = 0
        if let b = peek, b == UInt8(ascii: "Z") || b == UInt8(ascii: "z") {
            pos += 1
        } else if let b = peek, b == UInt8(ascii: "+") || b == UInt8(ascii: "-") {
            pos += 1
            let oh = try digits(2, "the offset hours")
            try expect(":", "in the offset")
            let om = try digits(2, "the offset minutes")
            guard oh <= 23, om <= 59 else { throw error("invalid date-time: offset out of range") }
            offsetSeconds = (oh * 3600 + om * 60) * (b == UInt8(ascii: "-") ? -1 : 1)
        } else {
            throw error("date-times need an offset (Z or ±HH:MM); local date-times are not supported")
        }
        guard (1...12).contains(month), day >= 1, day <= Self.daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 60 else {
            throw error("invalid date-time: a field is out of range")
        }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        let seconds = Double(days * 86400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds) + fraction
        return .dateTime(Date(timeIntervalSince1970: seconds))
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
