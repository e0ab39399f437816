import JSONRPC
import Testing

@Suite("NDJSON framing")
struct LineFramerTests {
    func lines(_ events: [LineFramer.Event]) -> [String] {
        events.map { event in
            switch event {
            case .line(let bytes): String(decoding: bytes, as: UTF8.self)
            case .tooLarge: "<too large>"
            }
        }
    }

    @Test("a message split across reads is reassembled")
    func split() {
        var framer = LineFramer(maxLineBytes: 100)
        #expect(framer.feed(Array("{\"a\":".utf8)).isEmpty)
        #expect(framer.feed(Array("1".utf8)).isEmpty)
        #expect(lines(framer.feed(Array("}\n".utf8))) == ["{\"a\":1}"])
    }

    @Test("several messages in one read, CRLF and blank lines")
    func several() {
        var framer = LineFramer(maxLineBytes: 100)
        #expect(lines(framer.feed(Array("a\nb\r\n\n  \nc\nd".utf8))) == ["a", "b", "c"])
        #expect(lines(framer.feed(Array("\n".utf8))) == ["d"])
    }

    @Test("an over-limit line is reported once, discarded, and framing resumes at the next newline")
    func tooLarge() {
        var framer = LineFramer(maxLineBytes: 10)
        var events = framer.feed(Array(repeating: UInt8(ascii: "x"), count: 8))
        events += framer.feed(Array(repeating: UInt8(ascii: "x"), count: 8))
        events += framer.feed(Array(repeating: UInt8(ascii: "x"), count: 1000))
        #expect(framer.bufferedCount == 0)
        events += framer.feed(Array("xx\nok\n".utf8))
        #expect(lines(events) == ["<too large>", "ok"])
        // Exactly at the limit is fine; one over is not, even inside a single read.
        #expect(lines(framer.feed(Array("0123456789\n01234567890\nnext\n".utf8))) == ["0123456789", "<too large>", "next"])
    }
}
