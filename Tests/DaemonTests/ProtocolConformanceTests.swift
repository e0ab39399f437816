import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

/// JSON-RPC 2.0 over the real socket of a real daemon process.
@Suite("JSON-RPC conformance over the socket", .serialized)
final class ProtocolConformanceTests {
    let daemon: DaemonProcess

    init() throws {
        daemon = try DaemonProcess(arguments: ["--enable-test-methods"])
    }

    deinit { daemon.stop() }

    func roundTrip(_ text: String) throws -> JSONValue {
        let c = try daemon.raw()
        c.send(text + "\n")
        return try c.readJSON()
    }

    @Test("request with number, string and null ids")
    func ids() throws {
        #expect(try roundTrip(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#) == ["jsonrpc": "2.0", "id": 1, "result": "pong"])
        #expect(try roundTrip(#"{"jsonrpc":"2.0","id":"abc","method":"daemon.ping"}"#)["id"] == "abc")
        let null = try roundTrip(#"{"jsonrpc":"2.0","id":null,"method":"daemon.ping"}"#)
        #expect(null["id"] == .null && null["result"] == "pong")
    }

    @Test("notifications are never answered, batches of notifications neither")
    func notifications() throws {
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","method":"daemon.ping"}"# + "\n")
        c.send(#"[{"jsonrpc":"2.0","method":"daemon.ping"},{"jsonrpc":"2.0","method":"nope"}]"# + "\n")
        c.send(#"{"jsonrpc":"2.0","id":"after","method":"daemon.ping"}"# + "\n")
        // The first reply on the wire is the one to the request that followed.
        #expect(try c.readJSON()["id"] == "after")
    }

    @Test("rpc.cancel sent as a request is refused as invalid: cancelling is a notification")
    func cancelAsRequest() throws {
        let reply = try roundTrip(#"{"jsonrpc":"2.0","id":9,"method":"rpc.cancel","params":{"id":1}}"#)
        #expect(reply["id"] == 9)
        #expect(reply["error"]?["code"] == -32600, "\(reply)")
    }

    @Test("batch: one array reply with an entry per request, errors included")
    func batch() throws {
        let reply = try roundTrip(#"[{"jsonrpc":"2.0","id":1,"method":"daemon.ping"},{"jsonrpc":"2.0","method":"daemon.ping"},{"jsonrpc":"2.0","id":2,"method":"nope"},7]"#)
        let entries = try #require(reply.arrayValue)
        #expect(entries.count == 3)
        #expect(entries.contains { $0["id"] == 1 && $0["result"] == "pong" })
        #expect(entries.contains { $0["id"] == 2 && $0["error"]?["code"] == -32601 })
        #expect(entries.contains { $0["id"] == .null && $0["error"]?["code"] == -32600 })
    }

    @Test("error codes: parse, invalid request, empty batch, not found, invalid params naming the field")
    func errors() throws {
        let parse = try roundTrip("{not json")
        #expect(parse["error"]?["code"] == -32700 && parse["id"] == .null)
        #expect(try roundTrip(#"{"jsonrpc":"2.0","id":1}"#)["error"]?["code"] == -32600)
        #expect(try roundTrip("[]")["error"]?["code"] == -32600)
        #expect(try roundTrip("42")["error"]?["code"] == -32600)
        #expect(try roundTrip(#""just a string""#)["error"]?["code"] == -32600)
        let notFound = try roundTrip(#"{"jsonrpc":"2.0","id":3,"method":"no.such"}"#)
        #expect(notFound["error"]?["code"] == -32601 && notFound["id"] == 3)
        let unknown = try roundTrip(#"{"jsonrpc":"2.0","id":4,"method":"session.hello","params":{"client":"x","clinet":"y"}}"#)
        #expect(unknown["error"]?["code"] == -32602 && unknown["error"]?["data"]?["field"] == "clinet")
        let missing = try roundTrip(#"{"jsonrpc":"2.0","id":5,"method":"session.hello","params":{}}"#)
        #expect(missing["error"]?["data"]?["field"] == "client")
        let type = try roundTrip(#"{"jsonrpc":"2.0","id":6,"method":"debug.sleep","params":{"ms":"1"}}"#)
        #expect(type["error"]?["data"]?["field"] == "ms")
    }

    @Test("nesting deeper than 64 and invalid UTF-8 get their errors; the connection goes on")
    func depthAndUTF8() throws {
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping","params":{"x":"# + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}}\n")
        #expect(try c.readJSON()["error"]?["code"] == -32600)
        c.send([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D, 0x0A])
        #expect(try c.readJSON()["error"]?["code"] == -32700)
        c.send(#"{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["result"] == "pong")
    }

    @Test("framing: split across writes, several per write, an over-limit line followed by a good one")
    func framing() throws {
        let c = try daemon.raw()
        let message = Array(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#.utf8) + [0x0A]
        for byte in message {
            c.send([byte])
            usleep(200)
        }
        #expect(try c.readJSON()["id"] == 1)
        c.send(#"{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}"# + "\n" + #"{"jsonrpc":"2.0","id":3,"method":"daemon.ping"}"# + "\n")
        let ids = Set([try c.readJSON()["id"], try c.readJSON()["id"]])
        #expect(ids == [2, 3])
        // 1 MiB + 1 of payload, then a good request on the same connection.
        var huge = Array(#"{"jsonrpc":"2.0","id":4,"method":"session.hello","params":{"client":""#.utf8)
        huge += [UInt8](repeating: UInt8(ascii: "a"), count: (1 << 20) + 1)
        huge += Array("\"}}\n".utf8)
        c.send(huge)
        c.send(#"{"jsonrpc":"2.0","id":5,"method":"daemon.ping"}"# + "\n")
        let tooLarge = try c.readJSON()
        #expect(tooLarge["error"]?["code"] == -32600)
        #expect(tooLarge["error"]?["message"] == "message too large")
        #expect(try c.readJSON()["id"] == 5)
    }

    @Test("concurrent requests on one connection complete out of order and match by id")
    func outOfOrder() throws {
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":"slow","method":"debug.sleep","params":{"ms":300}}"# + "\n")
        c.send(#"{"jsonrpc":"2.0","id":"fast","method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["id"] == "fast")
        #expect(try c.readJSON()["id"] == "slow")
    }

    @Test("rpc.cancel answers the pending request with -32800")
    func cancel() throws {
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":9,"method":"debug.sleep","params":{"ms":30000}}"# + "\n")
        usleep(50_000)
        c.send(#"{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":9}}"# + "\n")
        let reply = try c.readJSON()
        #expect(reply["id"] == 9)
        #expect(reply["error"]?["code"] == -32800)
        #expect(reply["error"]?["message"] == "request cancelled")
        // Cancelling something unknown is silently ignored; the connection still works.
        c.send(#"{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":12345}}"# + "\n" + #"{"jsonrpc":"2.0","id":10,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["id"] == 10)
    }

    @Test("a duplicate id while the first is pending is refused, not confused")
    func duplicateID() throws {
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"debug.sleep","params":{"ms":300}}"# + "\n")
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n")
        let first = try c.readJSON()
        #expect(first["error"]?["code"] == -32600)
        #expect(try c.readJSON()["result"]?["slept_ms"] == 300)
    }

    @Test("more than 64 in flight: the daemon stops reading, never serves more than 64 at once, answers all")
    func backpressure() throws {
        let c = try daemon.raw()
        var text = ""
        for i in 0..<300 { text += #"{"jsonrpc":"2.0","id":\#(i),"method":"debug.sleep","params":{"ms":100}}"# + "\n" }
        c.send(text)
        var seen = Set<Int64>()
        var maxConcurrent: Int64 = 0
        for _ in 0..<300 {
            let reply = try c.readJSON()
            if let id = reply["id"]?.intValue { seen.insert(id) }
            maxConcurrent = max(maxConcurrent, reply["result"]?["max_concurrent"]?.intValue ?? 0)
        }
        #expect(seen.count == 300)
        #expect(maxConcurrent <= 64)
        #expect(maxConcurrent >= 32, "requests should run concurrently up to the bound")
    }

    @Test("server info and discovery come from the registry")
    func infoAndDiscover() async throws {
        let client = try await daemon.client()
        defer { client.closeNow() }
        let info = try await client.call("daemon.info")
        #expect(info["pid"]?.intValue == Int64(daemon.pid))
        #expect(info["socket"]?.stringValue == daemon.socketPath)
        #expect((info["clients"]?.intValue ?? 0) >= 1)
        let doc = try await client.call("rpc.discover")
        let names = (doc["methods"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(names.contains("daemon.ping") && names.contains("debug.sleep"))
        // Every declared method has a handler (rpc.cancel is a notification handled by the transport).
        let declared = Set(DeskgateAPI.methods.map { $0.name }).subtracting(["rpc.cancel"])
        #expect(declared.subtracting(names).isEmpty, "declared but not served: \(declared.subtracting(names).sorted())")
        let hello = try await client.call("session.hello", ["client": "unit-test agent"])
        #expect(hello["label"] == "unit-test agent")
        let who = try await client.call("session.whoami")
        #expect(who["label"] == "unit-test agent")
    }
}
