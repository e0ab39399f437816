/// RFC 3339 date-times in UTC, as deskgate's JSON carries them (audit records, grants, policy
/// expiry). The fixed-width form sorts lexicographically in time order. No Foundation: the
/// daemon links FoundationEssentials only.
public enum RFC3339 {
    /// Formats microseconds since the epoch in UTC with `fractionDigits` digits of fraction
    /// (6: `2026-11-24T22:34:31.123456Z`, 3: milliseconds, 0: none; the rest is cut, not rounded).
    public static func format(micros: Int64, fractionDigits: Int = 6) -> String {
        func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
        let seconds = floorDiv(micros, 1_000_000)
        let fraction = Int(micros - seconds * 1_000_000)
        let days = floorDiv(seconds, 86400)
        let (year, month, day) = civil(fromDays: Int(days))
        let secondOfDay = Int(seconds - days * 86400)
        let digits = min(6, max(0, fractionDigits))
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: digits == 0 ? 20 : 21 + digits)
        func put(_ value: Int, _ at: Int, _ width: Int) {
            var v = value
            for i in stride(from: at + width - 1, through: at, by: -1) {
                out[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(year, 0, 4)
        out[4] = UInt8(ascii: "-")
        put(month, 5, 2)
        out[7] = UInt8(ascii: "-")
        put(day, 8, 2)
        out[10] = UInt8(ascii: "T")
        put(secondOfDay / 3600, 11, 2)
        out[13] = UInt8(ascii: ":")
        put(secondOfDay / 60 % 60, 14, 2)
        out[16] = UInt8(ascii: ":")
        put(secondOfDay % 60, 17, 2)
        if digits > 0 {
            out[19] = UInt8(ascii: ".")
            var scaled = fraction
            for _ in digits..<6 { scaled /= 10 }
            put(scaled, 20, digits)
        }
        out[out.count - 1] = UInt8(ascii: "Z")
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses an RFC 3339 date-time (`Z` or `±hh:mm` offset, optional fraction) to microseconds
    /// since the epoch; nil if malformed.
    public static func parse(_ text: String) -> Int64? {
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
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var i = 19
        var micros = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 100_000
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                micros += Int(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offsetSeconds = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard let oh = digits(i + 1, 2), b.count > i + 3, b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                oh < 24, om < 60
            else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offsetSeconds)
        return seconds * 1_000_000 + Int64(micros)
    }

    // Howard Hinnant's civil-from-days algorithms (proleptic Gregorian).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
