#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JSONRPC
import TestSupport
import Testing

/// Random and mutated input over the real socket: the daemon answers what it can, never crashes,
/// and keeps serving (bounded here; DESKGATE_FUZZ_ITERATIONS raises the count for long runs).
@Suite("Socket fuzzing")
struct SocketFuzzTests {
    static let seeds = [
        #"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#,
        #"{"jsonrpc":"2.0","id":"x","method":"session.hello","params":{"client":"fuzz"}}"#,
        #"[{"jsonrpc":"2.0","id":1,"method":"daemon.info"},{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":1}}]"#,
        #"{"jsonrpc":"2.0","id":2,"method":"tree.snapshot","params":{"app":"x","max_nodes":3,"interactive":false}}"#,
        #"{"jsonrpc":"2.0","id":3,"method":"broker.check","params":{"method":"text.set","params":{"ref":"r","value":"v"}}}"#,
        #"{"jsonrpc":"2.0","id":"dg-1","result":{"choice":"allow_always"}}"#,
    ]

    @Test("mutated and random lines never take the daemon down")
    func fuzz() throws {
        let daemon = try DaemonProcess(userPolicy: "default = \"deny\"\n")
        defer { daemon.stop() }
        var iterations = 3000
        if let raw = getenv("DESKGATE_FUZZ_ITERATIONS"), let n = Int(String(cString: raw)) { iterations = n }
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("{}[]\":,0123456789.eE+-tfnrulasx\\u \t".utf8)
        let connection = try daemon.raw()
        var sent = 0
        for i in 0..<iterations {
            var bytes = Array(Self.seeds.randomElement(using: &rng)!.utf8)
            if i % 4 == 0 {
                bytes = (0..<Int.random(in: 1..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                for _ in 0..<Int.random(in: 1...5, using: &rng) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: at)
                    default: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                    }
                }
            }
            // Newlines inside a mutation split it into several messages, which is fine.
            connection.send(bytes + [0x0A])
            sent += 1
            if i % 500 == 499 {
                // The connection (or a fresh one) still answers.
                let probe = try daemon.raw()
                probe.send(#"{"jsonrpc":"2.0","id":"probe","method":"daemon.ping"}"# + "\n")
                #expect(try probe.readJSON()["result"] == "pong")
            }
        }
        #expect(daemon.process.isRunning, "daemon died: \(daemon.log.suffix(2000))")
        let probe = try daemon.raw()
        probe.send(#"{"jsonrpc":"2.0","id":"last","method":"daemon.ping"}"# + "\n")
        #expect(try probe.readJSON()["id"] == "last")
        #expect(sent == iterations)
    }
}
