import JSONRPC
import Testing

@Suite("JSON-RPC message decoding")
struct MessageDecoderTests {
    let decoder = MessageDecoder()

    func single(_ text: String) -> Decoded? {
        if case .single(let d) = decoder.decode(line: Array(text.utf8)) { return d }
        return nil
    }

    @Test("requests keep their id type: number, string, null")
    func ids() {
        #expect(single(#"{"jsonrpc":"2.0","id":7,"method":"m"}"#) == .message(.request(Request(id: .int(7), method: "m"))))
        #expect(single(#"{"jsonrpc":"2.0","id":"x","method":"m","params":{}}"#) == .message(.request(Request(id: .string("x"), method: "m", params: [:]))))
        #expect(single(#"{"jsonrpc":"2.0","id":null,"method":"m"}"#) == .message(.request(Request(id: .null, method: "m"))))
        #expect(single(#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#) == .message(.request(Request(id: .double(1.5), method: "m"))))
    }

    @Test("a message without id is a notification")
    func notification() {
        #expect(single(#"{"jsonrpc":"2.0","method":"m","params":[1]}"#) == .message(.notification(Notification(method: "m", params: [1]))))
    }

    @Test("invalid requests carry the id when it is usable", arguments: [
        (#"{"id":1,"method":"m"}"#, RequestID?.some(.int(1))),
        (#"{"jsonrpc":"1.0","id":2,"method":"m"}"#, .some(.int(2))),
        (#"{"jsonrpc":"2.0","id":3,"method":5}"#, .some(.int(3))),
        (#"{"jsonrpc":"2.0","id":4,"method":"m","params":"x"}"#, .some(.int(4))),
        (#"{"jsonrpc":"2.0","id":{},"method":"m"}"#, nil),
        (#"{"jsonrpc":"2.0","id":5,"method":"m","extra":1}"#, .some(.int(5))),
        (#"{"jsonrpc":"2.0"}"#, nil),
    ])
    func invalid(text: String, id: RequestID?) {
        guard case .invalid(let gotID, let error)? = single(text) else {
            Issue.record("expected invalid for \(text)")
            return
        }
        #expect(gotID == id)
        #expect(error.code == .invalidRequest)
    }

    @Test("parse errors, bare values, empty and oversized batches")
    func errors() {
        guard case .invalid(nil, let parse)? = single("{nope") else { Issue.record("no parse error"); return }
        #expect(parse.code == .parseError)
        for bare in ["1", "\"s\"", "null", "true"] {
            guard case .invalid(nil, let e)? = single(bare) else { Issue.record("bare \(bare) accepted"); continue }
            #expect(e.code == .invalidRequest)
        }
        guard case .invalid(nil, let empty)? = single("[]") else { Issue.record("empty batch accepted"); return }
        #expect(empty.message.contains("empty batch"))
        let big = "[" + Array(repeating: #"{"jsonrpc":"2.0","method":"m"}"#, count: 65).joined(separator: ",") + "]"
        guard case .invalid(nil, let tooMany)? = single(big) else { Issue.record("oversized batch accepted"); return }
        #expect(tooMany.code == .invalidRequest)
        guard case .invalid(nil, let deep)? = single(String(repeating: "[", count: 70) + String(repeating: "]", count: 70)) else {
            Issue.record("deep accepted"); return
        }
        #expect(deep.code == .invalidRequest)
        // {"a":"<0xFF>"}: invalid UTF-8 is a parse error.
        guard case .single(.invalid(nil, let utf8)) = decoder.decode(line: [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D]) else {
            Issue.record("invalid UTF-8 accepted"); return
        }
        #expect(utf8.code == .parseError)
    }

    @Test("batches decode entry by entry")
    func batch() {
        let text = #"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},5]"#
        guard case .batch(let entries) = decoder.decode(line: Array(text.utf8)) else { Issue.record("not a batch"); return }
        #expect(entries.count == 3)
        #expect(entries[0] == .message(.request(Request(id: .int(1), method: "a"))))
        #expect(entries[1] == .message(.notification(Notification(method: "b"))))
        if case .invalid(nil, let e) = entries[2] { #expect(e.code == .invalidRequest) } else { Issue.record("5 accepted") }
    }

    @Test("responses from the peer decode with result or error")
    func responses() {
        #expect(single(#"{"jsonrpc":"2.0","id":"dg-1","result":{"choice":"deny"}}"#) ==
            .message(.response(Response(id: .string("dg-1"), result: .success(["choice": "deny"])))))
        #expect(single(#"{"jsonrpc":"2.0","id":"dg-2","error":{"code":-1,"message":"no"}}"#) ==
            .message(.response(Response(id: .string("dg-2"), error: RPCError(ErrorCode(rawValue: -1), "no")))))
        if case .invalid(let id, _)? = single(#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}"#) {
            #expect(id == .int(1))
        } else { Issue.record("both result and error accepted") }
    }

    @Test("parse error replies carry id null explicitly")
    func nullID() {
        let line = String(decoding: Message.response(Response(id: .null, error: .parseError("x"))).line, as: UTF8.self)
        #expect(line.contains(#""id":null"#))
        #expect(line.hasSuffix("\n"))
    }
}

