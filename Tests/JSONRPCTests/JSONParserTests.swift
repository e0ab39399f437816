import JSONRPC
import Testing

@Suite("JSON parser and writer")
struct JSONParserTests {
    @Test("round-trips values through the writer")
    func roundTrip() throws {
        let text = #"{"a":[1,-2,3.5,true,false,null],"b":{"c":"\u00e9\n\t\"\\"},"d":"😀","e":-0.001,"f":12345678901234}"#
        let value = try JSONParser.parse(text)
        let again = try JSONParser.parse(JSONWriter.bytes(value))
        #expect(value == again)
        #expect(value["b"]?["c"]?.stringValue == "é\n\t\"\\")
        #expect(value["d"]?.stringValue == "😀")
        #expect(value["f"] == .int(12_345_678_901_234))
    }

    @Test("sorted keys give a canonical form independent of insertion order")
    func canonical() throws {
        let a = try JSONParser.parse(#"{"z":1,"a":{"y":2,"b":3}}"#)
        let b = try JSONParser.parse(#"{"a":{"b":3,"y":2},"z":1}"#)
        #expect(JSONWriter.string(a, sortedKeys: true) == JSONWriter.string(b, sortedKeys: true))
        #expect(JSONWriter.string(a, sortedKeys: true) == #"{"a":{"b":3,"y":2},"z":1}"#)
    }

    @Test("surrogate pairs decode; lone surrogates are rejected", arguments: [
        (#""\ud83d\ude00""#, true), (#""\ud83d""#, false), (#""\ude00""#, false), (#""\ud83dx""#, false),
    ])
    func surrogates(input: String, valid: Bool) {
        let result = try? JSONParser.parse(input)
        #expect((result != nil) == valid)
        if valid { #expect(result?.stringValue == "😀") }
    }

    @Test("rejects malformed documents", arguments: [
        "", " ", "{", "[1,]", "{\"a\":}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "\"abc",
        "[1 2]", "{\"a\" 1}", "\"\u{01}\"", "1 2", "{} x", "\"\\x\"", "\"\\u12G4\"", "NaN", "Infinity", "1e999",
    ])
    func rejects(input: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(input) }
    }

    @Test("rejects invalid UTF-8", arguments: [
        [0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xE0, 0x80, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xC3, 0x22], [0x22, 0x80, 0x22],
    ] as [[UInt8]])
    func invalidUTF8(bytes: [UInt8]) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }

    @Test("bounds nesting depth at 64 by default")
    func depth() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.tooDeep(limit: 64)) { try JSONParser.parse(deep) }
        // Far deeper input must not exhaust the stack either.
        let huge = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.tooDeep(limit: 64)) { try JSONParser.parse(huge) }
    }

    @Test("duplicate keys are rejected")
    func duplicateKeys() {
        #expect(throws: JSONParseError.duplicateKey("a")) { try JSONParser.parse(#"{"a":1,"a":2}"#) }
    }

    @Test("writer escapes control characters and never emits non-finite numbers")
    func writerEscapes() throws {
        let s = JSONWriter.string(.string("a\u{0}b\u{1b}[31mc\u{7f}"))
        #expect(s == #""a\u0000b\u001b[31mc\u007f""#)
        #expect(JSONWriter.string(.double(.nan)) == "null")
        #expect(JSONWriter.string(.double(2)) == "2.0")
        #expect(try JSONParser.parse(s).stringValue == "a\u{0}b\u{1b}[31mc\u{7f}")
    }
}
