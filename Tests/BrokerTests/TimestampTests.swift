@testable import Broker
import Foundation
import JSONRPC
import Testing

/// The FoundationEssentials replacements for ISO8601DateFormatter, String(format:) and NSString paths.
@Suite("Timestamps and text helpers")
struct TimestampTests {
    @Test("RFC 3339 UTC formatting, with and without milliseconds")
    func format() {
        let date = Date(timeIntervalSince1970: 1_764_032_992.123)
        #expect(Timestamp.rfc3339(date) == "2025-11-25T01:09:52Z")
        #expect(Timestamp.rfc3339(date, milliseconds: true) == "2025-11-25T01:09:52.123Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 0), milliseconds: true) == "1970-01-01T00:00:00.000Z")
        #expect(GrantFile.timestamp(Date(timeIntervalSince1970: 1_893_456_000)) == "2030-01-01T00:00:00.000Z")
    }

    @Test("parsing: Z, offsets, fractions; malformed text is refused")
    func parse() throws {
        #expect(Timestamp.parse("2030-01-01T00:00:00Z") == Date(timeIntervalSince1970: 1_893_456_000))
        #expect(Timestamp.parse("2030-01-01T02:30:00+02:30") == Date(timeIntervalSince1970: 1_893_456_000))
        #expect(Timestamp.parse("2029-12-31T23:00:00-01:00") == Date(timeIntervalSince1970: 1_893_456_000))
        let fractional = try #require(Timestamp.parse("2030-01-01T00:00:00.250Z"))
        #expect(abs(fractional.timeIntervalSince1970 - 1_893_456_000.25) < 1e-6)
        let now = Date(timeIntervalSince1970: 1_764_032_992.123)
        let roundTrip = try #require(Timestamp.parse(Timestamp.rfc3339(now, milliseconds: true)))
        #expect(abs(roundTrip.timeIntervalSince1970 - now.timeIntervalSince1970) < 0.001)
        for bad in ["", "2030-01-01", "2030-01-01T00:00:00", "2030-13-01T00:00:00Z", "2030-01-01T24:00:00Z",
                    "2030-01-01T00:00:00.Z", "2030-01-01T00:00:00+0200", "2030-01-01T00:00:00Zjunk", "x030-01-01T00:00:00Z"] {
            #expect(Timestamp.parse(bad) == nil, "accepted \(bad)")
        }
    }

    @Test("hex, padding, printf and path helpers")
    func text() {
        #expect(Text.hex([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(Text.padded(7, 3) == "007")
        #expect(Text.padded(12345, 4) == "12345")
        #expect(Text.lastPathComponent("/etc/deskgate/policy.d/10-a.toml") == "10-a.toml")
        #expect(Text.lastPathComponent("policy.toml") == "policy.toml")
        #expect(Text.deletingLastPathComponent("/a/b/grants.json") == "/a/b")
        #expect(Text.deletingLastPathComponent("grants.json") == "")
        #expect(Text.deletingLastPathComponent("/grants.json") == "/")
        #expect(Text.deletingLastPathComponent("/a/b/") == "/a")
    }
}
