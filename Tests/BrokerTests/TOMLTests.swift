import Broker
import Foundation
import JSONRPC
import Testing

@Suite("TOML subset parser")
struct TOMLTests {
    @Test("parses every supported construct")
    func parsesSupportedSubset() throws {
        let text = """
            # comment
            default = "ask"   # trailing comment
            prompt_agents = ['/usr/bin/deskgate-prompt', "/opt/x"]
            "quoted key" = -42
            big = 1_000_000
            flag = true
            nested = [[1, 2], [], ["a"],]
            multi = [
              "x", # inside
              "y"
            ]

            [audit]
            retention_days = 90

            [[rule]]
            id = "a"
            expires = 2026-12-31T00:00:00Z
            esc = "tab\\tquote\\" nl\\n \\u00e9 \\U0001F600 back\\\\"

            [[rule]]
            id = 'lit\\no-escape'
            when = 2026-06-01T12:30:00.5+02:00
            """
        let root = try TOMLParser.parse(text, file: "t.toml")
        #expect(root["default"]?.value == .string("ask"))
        #expect(root["default"]?.line == 2)
        #expect(root["prompt_agents"]?.value == .array([.string("/usr/bin/deskgate-prompt"), .string("/opt/x")]))
        #expect(root["quoted key"]?.value == .integer(-42))
        #expect(root["big"]?.value == .integer(1_000_000))
        #expect(root["flag"]?.value == .boolean(true))
        #expect(root["nested"]?.value == .array([.array([.integer(1), .integer(2)]), .array([]), .array([.string("a")])]))
        #expect(root["multi"]?.value == .array([.string("x"), .string("y")]))
        guard case .table(let audit)? = root["audit"]?.value else { Issue.record("audit is not a table"); return }
        #expect(audit["retention_days"]?.value == .integer(90))
        #expect(audit["retention_days"]?.line == 14)
        guard case .tableArray(let rules)? = root["rule"]?.value else { Issue.record("rule is not an array of tables"); return }
        #expect(rules.count == 2)
        #expect(rules[0].line == 16)
        #expect(rules[0]["expires"]?.value == .dateTime(Date(timeIntervalSince1970: 1_798_675_200)))
        #expect(rules[0]["esc"]?.value == .string("tab\tquote\" nl\n é 😀 back\\"))
        #expect(rules[1]["id"]?.value == .string("lit\\no-escape"))
        #expect(rules[1]["when"]?.value == .dateTime(Date(timeIntervalSince1970: 1_780_309_800.5)))
    }

    @Test("CRLF line endings count lines the same")
    func crlf() throws {
        let root = try TOMLParser.parse("a = 1\r\n\r\nb = 2\r\n", file: "c.toml")
        #expect(root["b"]?.line == 3)
    }

    static let errorCases: [(String, Int, String)] = [
        ("a = 1\nb = ", 2, "expected a value"),
        ("a = 1\na = 2", 2, "already defined on line 1"),
        ("x = \"unterminated\n", 1, "newline in string"),
        ("x = 'a'\ny = \"bad \\q escape\"", 2, "invalid escape"),
        ("x = 1.5", 1, "floats are not supported"),
        ("x = 0x1F", 1, "only decimal integers"),
        ("x = 012", 1, "invalid integer"),
        ("x = 1__0", 1, "invalid integer"),
        ("x = 99999999999999999999", 1, "invalid integer"),
        ("x = {a = 1}", 1, "inline tables"),
        ("a.b = 1", 1, "dotted keys"),
        ("\n\n[a.b]", 3, "dotted table"),
        ("x = \"\"\"multi\"\"\"", 1, "multi-line strings"),
        ("x = 2026-12-31", 1, "local dates are not supported"),
        ("x = 2026-12-31T00:00:00", 1, "need an offset"),
        ("x = 2026-13-01T00:00:00Z", 1, "out of range"),
        ("x = 2026-02-30T00:00:00Z", 1, "out of range"),
        ("x = [1, 2", 1, "unterminated array"),
        ("x = [1 2]", 1, "expected ',' or ']'"),
        ("x = 1 y = 2", 1, "expected end of line"),
        ("[t]\n[t]", 2, "already defined"),
        ("[[r]]\n[r]", 2, "array of tables"),
        ("[r]\n[[r]]", 2, "already defined"),
        ("x = 1\n[x]", 2, "already defined as a value"),
        ("x = yes", 1, "expected a value"),
        ("= 1", 1, "expected a key"),
        ("x = \"a\u{01}b\"", 1, "control character"),
        ("x = 1 # bell \u{07}", 1, "control character in comment"),
        ("x = \"\\uD800\"", 1, "not a Unicode scalar"),
        ("x = [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]", 1, "nested deeper"),
        ("[t\nx = 1", 1, "expected ']'"),
    ]

    @Test("errors carry the file and the right line", arguments: errorCases)
    func errorLines(_ input: String, line: Int, fragment: String) {
        do {
            _ = try TOMLParser.parse(input, file: "bad.toml")
            Issue.record("parsed without error: \(input)")
        } catch {
            #expect(error.file == "bad.toml")
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("bad.toml:\(line): "))
        }
    }

    @Test("invalid UTF-8 is rejected with its line")
    func invalidUTF8() {
        var bytes = Array("a = 1\nb = \"".utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array("\"\n".utf8)
        #expect(throws: TOMLError.self) { try TOMLParser.parse(bytes, file: "u.toml") }
        do { _ = try TOMLParser.parse(bytes, file: "u.toml") } catch { #expect(error.line == 2) }
    }

    /// Random and mutated inputs: the parser returns or throws TOMLError, never crashes or hangs.
    @Test("fuzz: random and mutated documents never crash")
    func fuzz() {
        let seedDocument = Array("""
            default = "deny"
            prompt_agents = ["/usr/bin/deskgate-prompt"]
            [audit]
            retention_days = 30
            [[rule]]
            id = "r1"
            effect = "allow"
            actions = ["observe", "text.set"]
            app = "led*"
            expires = 2026-12-31T00:00:00+01:00
            reason = "esc \\u00e9 \\" ok"
            """.utf8)
        var generator = SeededGenerator(seed: 0xDE5C_6A7E)
        let alphabet = Array("[]{}=\"'\\#,.-+_:TZ0123456789 \n\r\tabcdeftrueflsxyz".utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF]
        var parsed = 0
        var rejected = 0
        for iteration in 0..<6000 {
            var bytes: [UInt8]
            if iteration % 3 == 0 {
                let length = Int.random(in: 0..<200, using: &generator)
                bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            } else {
                bytes = seedDocument
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let position = Int.random(in: 0...bytes.count, using: &generator)
                    switch Int.random(in: 0..<4, using: &generator) {
                    case 0 where position < bytes.count: bytes.remove(at: position)
                    case 1: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                    case 2 where position < bytes.count: bytes[position] = alphabet.randomElement(using: &generator)!
                    default:
                        let cut = Int.random(in: 0...bytes.count, using: &generator)
                        bytes = Array(bytes[..<min(cut, bytes.count)])
                    }
                }
            }
            do {
                _ = try TOMLParser.parse(bytes, file: "fuzz.toml")
                _ = try? PolicyParser.parse(bytes, path: "fuzz.toml", layer: .user)
                parsed += 1
            } catch {
                #expect(error.line >= 1)
                #expect(error.line <= bytes.filter { $0 == 0x0A }.count + 1)
                rejected += 1
            }
        }
        #expect(parsed > 0)
        #expect(rejected > 0)
    }
}

/// xorshift64*, so fuzz and property runs are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
