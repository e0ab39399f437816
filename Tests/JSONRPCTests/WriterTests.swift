import JSONRPC
import Testing

/// The writer's fast paths (bulk string runs, integers without strings, pre-encoded results)
/// against straightforward reference forms.
@Suite("JSON writer fast paths")
struct WriterTests {
    /// The escaping rule byte by byte, as the writer had it before runs were copied at once.
    static func reference(_ s: String) -> [UInt8] {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20, 0x7F: out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 0xF)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    @Test("Strings: every ASCII byte alone, between runs, at both ends; multi-byte and repaired UTF-8")
    func strings() throws {
        var samples: [String] = []
        for b in UInt8(0)..<0x80 {
            let c = String(UnicodeScalar(b))
            samples += [c, "ab" + c, c + "cd", "x" + c + "y" + c + c + "z"]
        }
        samples += ["", "é", "\u{202E}\u{2066}", "👩‍👩‍👧", String(decoding: [0xED, 0xA0, 0x80, 0xFF, 0x41], as: UTF8.self),
                    String(repeating: "a\"b\\c\n", count: 1000)]
        for s in samples {
            var writer = JSONWriter()
            writer.writeString(s)
            #expect(writer.bytes == Self.reference(s), "\(s.unicodeScalars.map(\.value))")
            #expect(try JSONParser.parse(writer.bytes) == .string(s))
        }
    }

    @Test("Integers are written as String(i) writes them")
    func integers() {
        var values: [Int64] = [0, 1, 9, 10, 11, 99, 100, -1, -9, -10, 12345, Int64.max, Int64.min, Int64.min + 1]
        var x: Int64 = 1
        while x < Int64.max / 10 { values += [x - 1, x, x + 1, -x]; x *= 10 }
        for value in values {
            var writer = JSONWriter()
            writer.write(.int(value))
            #expect(writer.bytes == Array(String(value).utf8))
        }
        var writer = JSONWriter()
        writer.write(.double(-3))
        #expect(writer.bytes == Array("-3.0".utf8))
    }

    @Test("A pre-encoded result makes the same response object as its value")
    func encodedResponse() throws {
        let results: [JSONValue] = [.null, true, 42, "s \"q\" \u{1}", ["a": [1, 2.5, "x"], "b": .object([:])], []]
        let ids: [RequestID] = [.int(7), .int(-1), .string("id \"\u{0}\u{202E}"), .null, .double(1.5)]
        for id in ids {
            for value in results {
                var writer = JSONWriter()
                writer.write(value)
                let encoded = Message.responseObject(id: id, result: EncodedJSON(writer))
                let line = Message.response(Response(id: id, result: .success(value))).line
                #expect(encoded + [0x0A] == line)
            }
        }
    }
}
