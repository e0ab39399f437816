import JSONRPC
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// A small deterministic PRNG so failures reproduce from the printed seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Decoder fuzzing (bounded; set DESKGATE_FUZZ_ITERATIONS for longer runs)")
struct FuzzTests {
    static let seeds: [String] = [
        #"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#,
        #"[{"jsonrpc":"2.0","id":"a","method":"tree.snapshot","params":{"app":"x","max_nodes":5}},{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":"a"}}]"#,
        #"{"jsonrpc":"2.0","id":null,"result":{"choice":"allow_once"}}"#,
        #"{"a":[1,2.5e-3,true,null,"\u00e9\ud83d\ude00"],"b":{"c":{}}}"#,
    ]

    static var iterations: Int {
        var value = 20_000
        if let raw = getenv("DESKGATE_FUZZ_ITERATIONS"), let n = Int(String(cString: raw)) { value = n }
        return value
    }

    @Test("random and mutated inputs never crash the decoder or validator")
    func fuzz() {
        var rng = SplitMix64(state: 0xDE5C_6A7E)
        let decoder = MessageDecoder()
        let alphabet = Array("{}[]\":,0123456789.eE+-tfnrulasx\\u \n".utf8)
        var outcomes = [0, 0, 0]
        for i in 0..<Self.iterations {
            var bytes: [UInt8]
            if i % 3 == 0 {
                bytes = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
                }
            } else {
                bytes = Array(Self.seeds.randomElement(using: &rng)!.utf8)
                for _ in 0..<Int.random(in: 1...6, using: &rng) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: at)
                    case 2: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                    default: bytes.insert(contentsOf: bytes[at...].prefix(16), at: at)
                    }
                }
            }
            switch decoder.decode(line: bytes) {
            case .single(.message(.request(let request))):
                outcomes[0] += 1
                _ = try? ParamsObject(validating: request.params, fields: [Schema.Field("app", .string, required: true)])
            case .single(.invalid): outcomes[1] += 1
            default: outcomes[2] += 1
            }
            // Whatever was accepted must re-encode to something that parses again.
            if let value = try? JSONParser.parse(bytes) {
                #expect((try? JSONParser.parse(JSONWriter.bytes(value))) == value)
            }
        }
        // The corpus must exercise both accepting and rejecting paths.
        #expect(outcomes[0] > 0 && outcomes[1] > 0)
    }
}
