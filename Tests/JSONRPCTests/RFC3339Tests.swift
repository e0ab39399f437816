import JSONRPC
import Testing

@Suite("RFC 3339 time stamps")
struct RFC3339Tests {
    @Test("fraction digits are cut, not rounded; times before the epoch and leap days format correctly")
    func format() {
        let micros: Int64 = 1_795_000_000_999_999
        #expect(RFC3339.format(micros: micros) == "2026-11-18T11:06:40.999999Z")
        #expect(RFC3339.format(micros: micros, fractionDigits: 3) == "2026-11-18T11:06:40.999Z")
        #expect(RFC3339.format(micros: micros, fractionDigits: 0) == "2026-11-18T11:06:40Z")
        #expect(RFC3339.format(micros: -1) == "1969-12-31T23:59:59.999999Z")
        #expect(RFC3339.format(micros: 1_709_164_800_000_000, fractionDigits: 0) == "2024-02-29T00:00:00Z")
    }

    @Test("every format parses back to the same instant (to its precision)")
    func roundTrip() {
        for micros: Int64 in [0, -1, 1_795_000_000_123_456, 4_102_444_799_999_999] {
            #expect(RFC3339.parse(RFC3339.format(micros: micros)) == micros)
            #expect(RFC3339.parse(RFC3339.format(micros: micros, fractionDigits: 0)).map { $0 / 1_000_000 }
                    == (micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000))
        }
        #expect(RFC3339.parse("2026-11-18T11:06:40Zjunk") == nil)
    }
}
