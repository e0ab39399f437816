#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Audit
import Broker
import CLinux
import Dispatch
import JSONRPC

@main
struct DeskgateBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deskgate-bench",
        abstract: "Benchmarks for deskgate (run by `make bench`; see docs/benchmarks.md).",
        subcommands: [Ping.self, EchoFloor.self, Throughput.self, Call.self, BrokerDecisions.self, TaskDecisions.self, AuditAppends.self])
}

/// Sequential round trips of one method from one client.
struct Ping: ParsableCommand {
    @Option var socket: String
    @Option var count: Int = 20_000
    @Option var method: String = "daemon.ping"

    func run() throws {
        let s = try BenchSocket(path: socket)
        var line: [UInt8] = []
        var samples: [Double] = []
        samples.reserveCapacity(count)
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"\#(method)"}"#.utf8) + [0x0A]
        for i in 0..<(count + 1000) {
            let t0 = nowNanoseconds()
            s.send(request)
            guard s.readLine(into: &line) else { throw BenchError("connection closed") }
            if i >= 1000 { samples.append(Double(nowNanoseconds() - t0) / 1000) }
        }
        samples.sort()
        print("ping round trip (\(method), 1 client, \(count) calls): p50 \(format(percentile(samples, 0.5))) µs, p99 \(format(percentile(samples, 0.99))) µs")
    }
}

/// The floor under `ping`: the same client loop against a trivial echo server on another thread
/// (a socketpair, one read and one canned reply per line), so the daemon's own share of the
/// round trip is `ping` minus this, measured on the same machine in the same run.
struct EchoFloor: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "echo-floor")
    @Option var count: Int = 20_000

    func run() throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw BenchError("socketpair failed")
        }
        let server = BenchSocket(connected: fds[1])
        let reply = Array(#"{"id":1,"jsonrpc":"2.0","result":"pong"}"#.utf8) + [0x0A]
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            var line: [UInt8] = []
            while server.readLine(into: &line) { server.send(reply) }
            done.signal()
        }
        let client = BenchSocket(connected: fds[0])
        var line: [UInt8] = []
        var samples: [Double] = []
        samples.reserveCapacity(count)
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#.utf8) + [0x0A]
        for i in 0..<(count + 1000) {
            let t0 = nowNanoseconds()
            client.send(request)
            guard client.readLine(into: &line) else { throw BenchError("echo server closed") }
            if i >= 1000 { samples.append(Double(nowNanoseconds() - t0) / 1000) }
        }
        shutdown(fds[0], Int32(SHUT_RDWR))
        done.wait()
        samples.sort()
        print("echo floor (same client loop, trivial echo thread, \(count) calls): p50 \(format(percentile(samples, 0.5))) µs, p99 \(format(percentile(samples, 0.99))) µs")
    }
}

/// Pipelined throughput: each client keeps `window` requests in flight.
struct Throughput: ParsableCommand {
    @Option var socket: String
    @Option var clients: Int = 1
    @Option var requests: Int = 200_000
    @Option var window: Int = 32
    @Option var method: String = "daemon.ping"

    func run() throws {
        let perClient = requests / clients
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"\#(method)"}"#.utf8) + [0x0A]
        let sockets = try (0..<clients).map { _ in try BenchSocket(path: socket) }
        let t0 = nowNanoseconds()
        DispatchQueue.concurrentPerform(iterations: clients) { index in
            let s = sockets[index]
            var line: [UInt8] = []
            var sent = 0
            var received = 0
            let burst = Array([[UInt8]](repeating: request, count: window).joined())
            s.send(burst)
            sent = window
            while received < perClient {
                guard s.readLine(into: &line) else { return }
                received += 1
                if sent < perClient {
                    s.send(request)
                    sent += 1
                }
            }
        }
        let seconds = Double(nowNanoseconds() - t0) / 1e9
        let total = perClient * clients
        print("pipelined throughput (\(method), \(clients) client(s), window \(window)): \(Int(Double(total) / seconds)) requests/s (\(total) in \(format(seconds, 2)) s)")
    }
}

/// Round trips of one method with params (snapshots, actions), reporting p50/p99 in ms.
struct Call: ParsableCommand {
    @Option var socket: String
    @Option var method: String
    @Option var params: String = "{}"
    @Option var count: Int = 50
    @Option var label: String = ""
    @Option(help: "A method called (untimed) before each timed call, e.g. an action before a snapshot.")
    var before: String?
    @Option var beforeParams: String = "{}"
    @Flag var printResult = false
    @Flag(help: "Also print the median of each numeric field of the result's `stats` (snapshots).")
    var stats = false

    func run() throws {
        let s = try BenchSocket(path: socket)
        var line: [UInt8] = []
        var samples: [Double] = []
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"\#(method)","params":\#(params)}"#.utf8) + [0x0A]
        var bytes = 0
        var statSamples: [String: [Double]] = [:]
        var statOrder: [String] = []
        let beforeRequest = before.map {
            Array(#"{"jsonrpc":"2.0","id":0,"method":"\#($0)","params":\#(beforeParams)}"#.utf8) + [0x0A]
        }
        for i in 0..<(count + 3) {
            if let beforeRequest {
                s.send(beforeRequest)
                guard s.readLine(into: &line) else { throw BenchError("connection closed") }
                if i == 0, let reply = try? JSONParser.parse(line), let error = reply["error"] {
                    throw BenchError("\(before ?? "") failed: \(error)")
                }
            }
            let t0 = nowNanoseconds()
            s.send(request)
            guard s.readLine(into: &line) else { throw BenchError("connection closed") }
            if i == 0, let reply = try? JSONParser.parse(line), let error = reply["error"] {
                throw BenchError("\(method) failed: \(error)")
            }
            bytes = line.count
            if i >= 3 { samples.append(Double(nowNanoseconds() - t0) / 1e6) }
            // Parsed after the clock stopped: the client's own parsing is not measured.
            if stats, i >= 3, let members = (try? JSONParser.parse(line))?["result"]?["stats"]?.objectValue {
                for (key, value) in members {
                    guard let number = value.doubleValue else { continue }
                    if statSamples[key] == nil { statOrder.append(key) }
                    statSamples[key, default: []].append(number)
                }
            }
            if printResult, let reply = try? JSONParser.parse(line) {
                print(JSONWriter.string(reply["result"] ?? .null))
                return
            }
        }
        samples.sort()
        var summary = "\(label.isEmpty ? method : label): p50 \(format(percentile(samples, 0.5), 2)) ms, p99 \(format(percentile(samples, 0.99), 2)) ms (\(count) calls, reply \(bytes) bytes)"
        if stats, !statOrder.isEmpty {
            summary += "; stats p50: " + statOrder.map { key in
                "\(key) \(format(percentile(statSamples[key]!.sorted(), 0.5), 2))"
            }.joined(separator: ", ")
        }
        print(summary)
    }
}

/// Broker decision time with 10,000 rules (pure logic, no daemon).
struct BrokerDecisions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "broker")
    @Option var rules: Int = 10_000
    @Option var decisions: Int = 100_000

    func run() async throws {
        print(await BrokerBenchmark.run(rules: rules, decisions: decisions).summary)
    }
}

/// A request inside an approved task against the same request under an allow rule.
struct TaskDecisions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks")
    @Option var decisions: Int = 100_000

    func run() async throws {
        print(await TaskBenchmark.run(decisions: decisions))
    }
}

/// Audited decisions per second with group commit from 16 appenders, and append latency.
struct AuditAppends: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit")
    @Option var directory: String

    func run() async throws {
        print(await AuditBenchmark.run(directory: directory))
    }
}
