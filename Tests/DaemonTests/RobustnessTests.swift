#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

@Suite("Load, slow and hostile clients", .serialized)
struct RobustnessTests {
    @Test("100 concurrent clients × 100 requests are all answered correctly")
    func manyClients() async throws {
        // One test process holds all 100: above the default bound per process (BoundsTests).
        let daemon = try DaemonProcess(arguments: ["--max-connections-per-process", "200"])
        defer { daemon.stop() }
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for clientIndex in 0..<100 {
                group.addTask {
                    let client = try await daemon.client()
                    defer { client.closeNow() }
                    _ = try await client.call("session.hello", ["client": .string("c\(clientIndex)")])
                    var ok = 0
                    try await withThrowingTaskGroup(of: Bool.self) { inner in
                        for _ in 0..<100 {
                            inner.addTask { try await client.call("daemon.ping") == "pong" }
                        }
                        for try await good in inner where good { ok += 1 }
                    }
                    // Each connection keeps its own label: no cross-talk between sessions.
                    let who = try await client.call("session.whoami")
                    return who["label"] == .string("c\(clientIndex)") ? ok : -1
                }
            }
            var all: [Int] = []
            for try await count in group { all.append(count) }
            return all
        }
        #expect(results.count == 100)
        #expect(results.allSatisfy { $0 == 100 })
    }

    @Test("idle, half-line and non-reading clients delay nobody; a non-reader is closed at the reply bound")
    func slowClients() async throws {
        let daemon = try DaemonProcess(arguments: ["--max-reply-buffer", "262144"])
        defer { daemon.stop() }
        let idle = try daemon.raw()
        let halfLine = try daemon.raw()
        halfLine.send(#"{"jsonrpc":"2.0","id":1,"method":"dae"#)
        // A client that floods requests and never reads a reply.
        let flooder = try daemon.raw()
        var line = ""
        for i in 0..<200 { line += #"{"jsonrpc":"2.0","id":\#(i),"method":"rpc.discover"}"# + "\n" }
        let floodTask = Task.detached {
            var sent = 0
            while sent < 200, flooder.send(line) { sent += 1 }
            return sent
        }
        // Meanwhile a well-behaved client is served normally.
        let client = try await daemon.client()
        defer { client.closeNow() }
        for _ in 0..<50 {
            let pong = try await client.call("daemon.ping", timeout: .seconds(10))
            #expect(pong == "pong")
        }
        let sent = await floodTask.value
        #expect(sent < 200, "the flooder should have been cut off")
        flooder.setReceiveTimeout(10)
        #expect(daemon.log.contains("reply buffer over"))
        _ = idle
        _ = halfLine
        let info = try await client.call("daemon.info")
        #expect((info["clients"]?.intValue ?? 0) >= 3, "idle and half-line clients stay connected")
    }

    @Test("thousands of connect/disconnect cycles leave the daemon's fd count flat")
    func fdLeak() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        func fdCount() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd").count) ?? -1 }
        let warm = try daemon.raw()
        warm.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n")
        _ = try warm.readJSON()
        warm.close()
        usleep(100_000)
        let before = fdCount()
        for i in 0..<2000 {
            let c = try daemon.raw()
            if i % 2 == 0 {
                c.send(#"{"jsonrpc":"2.0","id":1,"method":"session.whoami"}"# + "\n")
                _ = c.readLine()
            }
            c.close()
        }
        var after = fdCount()
        for _ in 0..<100 where after > before + 2 {
            usleep(20_000)
            after = fdCount()
        }
        #expect(after <= before + 2, "fds before \(before), after \(after)")
    }

    @Test("disconnecting mid-request is harmless")
    func disconnectMidRequest() throws {
        let daemon = try DaemonProcess(arguments: ["--enable-test-methods"])
        defer { daemon.stop() }
        for _ in 0..<20 {
            let c = try daemon.raw()
            c.send(#"{"jsonrpc":"2.0","id":1,"method":"debug.sleep","params":{"ms":50}}"# + "\n")
            c.close()
        }
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["result"] == "pong")
    }

    @Test("SIGTERM mid-load: in-flight requests are answered, the socket file is removed, exit status 0")
    func sigtermMidLoad() async throws {
        let daemon = try DaemonProcess(arguments: ["--enable-test-methods"])
        let connections = try (0..<8).map { _ in try daemon.raw() }
        for (i, c) in connections.enumerated() {
            c.send(#"{"jsonrpc":"2.0","id":\#(i),"method":"debug.sleep","params":{"ms":400}}"# + "\n")
        }
        usleep(100_000)
        kill(daemon.pid, SIGTERM)
        for (i, c) in connections.enumerated() {
            let reply = try c.readJSON()
            #expect(reply["id"]?.intValue == Int64(i))
            #expect(reply["result"]?["slept_ms"] == 400)
        }
        let status = daemon.stop(timeout: 10)
        #expect(status == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(daemon.log.contains("stopped"))
    }
}
