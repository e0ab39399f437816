#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JSONRPC
import TestSupport
import Testing

/// Bounded under abuse: what one client process and all clients together can hold, with room
/// kept for the person (a fresh process's revoke or pause, a ping). Small limits set by flags
/// and `prlimit`, not tens of thousands of real connections.
@Suite("Bounded under abuse: connections and unfinished lines", .serialized)
struct BoundsTests {
    /// `daemon.ping` and `grants.revoke_all` from a separate process (a person's terminal).
    static func personStillServed(_ daemon: DaemonProcess, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let ping = try daemon.callFromPython("daemon.ping")
        #expect(ping["result"] == "pong", "\(ping)", sourceLocation: sourceLocation)
        let revoke = try daemon.callFromPython("grants.revoke_all")
        #expect(revoke["result"]?["revoked"] != nil, "\(revoke)", sourceLocation: sourceLocation)
    }

    static func refusal(_ connection: RawConnection) -> JSONValue? {
        let (lines, closed, _) = connection.readUntilClose()
        guard closed, let line = lines.first else { return nil }
        return try? JSONParser.parse(line)
    }

    @Test("one process holds at most --max-connections-per-process; the next is told -32012 and closed; others are served")
    func perProcess() throws {
        let daemon = try DaemonProcess(arguments: ["--max-connections-per-process", "4"])
        defer { daemon.stop() }
        var held: [RawConnection] = []
        defer { held.forEach { $0.close() } }
        for _ in 0..<4 {
            let connection = try daemon.raw()
            #expect(connection.send(json: ["jsonrpc": "2.0", "id": 1, "method": "daemon.ping"]))
            #expect((try? connection.readJSON())?["result"] == "pong")
            held.append(connection)
        }
        let fifth = try daemon.raw()
        let refused = Self.refusal(fifth)
        #expect(refused?["error"]?["code"] == -32012, "\(String(describing: refused))")
        #expect(refused?["error"]?["data"]?["reason"] == "connections_per_process")
        try Self.personStillServed(daemon)
        // A connection given back makes room again.
        held.removeLast().close()
        var again: RawConnection?
        for _ in 0..<50 where again == nil {
            let candidate = try daemon.raw()
            if candidate.send(json: ["jsonrpc": "2.0", "id": 2, "method": "daemon.ping"]), (try? candidate.readJSON())?["result"] == "pong" {
                again = candidate
            } else {
                candidate.close()
                usleep(20_000)
            }
        }
        #expect(again != nil)
        again?.close()
    }

    @Test("past --max-connections a fresh process gets a reserve connection for revoke, pause and ping only; a process already connected does not; then none")
    func totalAndReserve() throws {
        let daemon = try DaemonProcess(arguments: ["--max-connections", "6", "--reserve-connections", "2", "--max-connections-per-process", "100"])
        defer { daemon.stop() }
        var held: [RawConnection] = []
        defer { held.forEach { $0.close() } }
        for _ in 0..<6 {
            let connection = try daemon.raw()
            #expect(connection.send(json: ["jsonrpc": "2.0", "id": 1, "method": "daemon.ping"]))
            #expect((try? connection.readJSON())?["result"] == "pong")
            held.append(connection)
        }
        // The abuser cannot take the reserve: it already holds connections.
        let seventh = try daemon.raw()
        #expect(Self.refusal(seventh)?["error"]?["data"]?["reason"] == "connections_total")
        // A person's fresh process can: ping and revoke work, anything else is refused.
        try Self.personStillServed(daemon)
        let snapshot = try daemon.callFromPython("apps.list")
        #expect(snapshot["error"]?["code"] == -32012 && snapshot["error"]?["data"]?["reason"] == "reserve_connection", "\(snapshot)")
        let pause = try daemon.callFromPython("broker.pause", ["reason": "from the reserve"])
        #expect(pause["result"]?["paused"] == true, "\(pause)")
    }

    @Test("unfinished lines across all connections stay within --partial-line-budget: the one over it is told and closed; short requests pass")
    func partialLineBudget() throws {
        let daemon = try DaemonProcess(arguments: ["--partial-line-budget", "\(3 << 20)", "--max-connections-per-process", "100"])
        defer { daemon.stop() }
        // Eight connections each send 900 KiB of a line and never its newline (7.2 MiB in all).
        var held: [RawConnection] = []
        defer { held.forEach { $0.close() } }
        let chunk = Array("[".utf8) + [UInt8](repeating: UInt8(ascii: "1"), count: 900 << 10)
        for _ in 0..<8 {
            let connection = try daemon.raw()
            _ = connection.send(chunk)
            held.append(connection)
        }
        var closedByBudget = 0
        for connection in held {
            connection.setReceiveTimeout(1)
            if let line = connection.readLine(), let reply = try? JSONParser.parse(line),
               reply["error"]?["data"]?["reason"] == "partial_line_budget" {
                #expect(reply["error"]?["code"] == -32012)
                #expect(connection.waitForClose())
                closedByBudget += 1
            }
        }
        // 3 MiB hold three 900 KiB lines, and a fourth crosses the budget: the rest are closed.
        #expect(closedByBudget >= 4 && closedByBudget <= 5, "\(closedByBudget) closed")
        try Self.personStillServed(daemon)
        let info = try daemon.callFromPython("daemon.info")
        #expect(info["result"]?["pid"] != nil)
    }

    @Test("under a small file descriptor limit (prlimit), the bounds shrink to fit: refusals are -32012 and a person's ping and revoke still get through")
    func fileDescriptors() throws {
        // 200 descriptors: room for (200 - 128) / 2 = 36 connections, a quarter of them reserve.
        let daemon = try DaemonProcess(arguments: ["--max-connections-per-process", "1000"],
                                       wrapper: ["/usr/bin/prlimit", "--nofile=200:200", "--"])
        defer { daemon.stop() }
        var held: [RawConnection] = []
        defer { held.forEach { $0.close() } }
        var refused: JSONValue?
        for _ in 0..<100 {
            let connection = try daemon.raw()
            _ = connection.send(json: ["jsonrpc": "2.0", "id": 1, "method": "daemon.ping"])
            guard let line = connection.readLine(), let reply = try? JSONParser.parse(line) else {
                Issue.record("a connection got no answer at all after \(held.count)")
                break
            }
            if reply["error"] != nil {
                refused = reply
                connection.close()
                break
            }
            held.append(connection)
        }
        #expect(refused?["error"]?["code"] == -32012 && refused?["error"]?["data"]?["reason"] == "connections_total",
                "\(String(describing: refused)) after \(held.count)")
        #expect(held.count > 10 && held.count < 40, "\(held.count) held")
        #expect(daemon.log.contains("allows fewer connections than asked"))
        try Self.personStillServed(daemon)
    }
}
