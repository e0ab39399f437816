#if canImport(Glibc)
import Glibc
#endif
import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Synchronization
import TestSupport
import Testing

/// Many clients against a daemon one of whose apps hangs (SIGSTOP): the others' snapshots go on.
@Suite("A frozen app under load", .serialized, .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct FrozenAppLoadTests {
    static let clients = 50

    @Test("50 clients snapshot a live app while another is frozen: every snapshot is whole, every request to the frozen app gets -32004; it is served again after SIGCONT (2 rounds; make soak: 20)")
    func fiftyClientsOneFrozenApp() async throws {
        let rounds = Soak.count("DESKGATE_SOAK_FROZEN_ROUNDS", short: 2, full: 20)
        // 50 connections from this one process. Small reads get the bulk reads' timeout (5 s, not
        // 500 ms): 50 snapshots at once queue up in the live app (one Python thread), and a small
        // read waiting behind them took over 500 ms now and then even with no app frozen
        // (docs/benchmarks.md, "Soak"); this test is about the frozen app, not the live one's speed.
        let daemon = try DaemonProcess(arguments: ["--max-connections-per-process", "128", "--read-timeout-ms", "5000"],
                                       userPolicy: GatedFlowTests.allowFixtures)
        defer { daemon.stop() }
        let live = try await Flows.launch(daemon, name: "deskgate-e2e-live-\(UInt32.random(in: 0...UInt32.max))", arguments: ["--rows", "100"])
        let frozen = try await Flows.launch(daemon, name: "deskgate-e2e-frozen-\(UInt32.random(in: 0...UInt32.max))")
        defer { live.terminate(); frozen.terminate() }
        let probe = try await daemon.client()
        defer { probe.closeNow() }
        let reference = try await probe.call("tree.snapshot", ["app": .string(live.name)])
        let liveNodes = reference["nodes"]?.arrayValue?.count ?? 0
        try #require(liveNodes > 10, "\(reference)")
        _ = try await probe.call("tree.snapshot", ["app": .string(frozen.name)])

        let started = ContinuousClock.now
        kill(frozen.pid, SIGSTOP)
        defer { kill(frozen.pid, SIGCONT) }
        let connections = try await withThrowingTaskGroup(of: DeskgateClient.self) { group in
            for _ in 0..<Self.clients { group.addTask { try await daemon.client() } }
            var all: [DeskgateClient] = []
            for try await client in group { all.append(client) }
            return all
        }
        defer { for client in connections { client.closeNow() } }

        // Each client snapshots the live app every round; one in five also asks the frozen one.
        struct Tally: Sendable {
            var whole = 0, partial: [String] = [], liveErrors: [String] = []
            var frozenTimeouts = 0, frozenOther: [String] = []
        }
        let tally = try await withThrowingTaskGroup(of: Tally.self) { group in
            for (index, client) in connections.enumerated() {
                group.addTask {
                    var tally = Tally()
                    for _ in 0..<rounds {
                        async let frozenCall: String? = index % 5 == 0 ? Self.frozenAnswer(client, frozen.name) : nil
                        do {
                            let snapshot = try await client.call("tree.snapshot", ["app": .string(live.name)])
                            let count = snapshot["nodes"]?.arrayValue?.count ?? 0
                            if count == liveNodes && snapshot["truncated"] != true { tally.whole += 1 } else { tally.partial.append("\(count) nodes") }
                        } catch {
                            tally.liveErrors.append("\(error)")
                        }
                        switch await frozenCall {
                        case "-32004"?: tally.frozenTimeouts += 1
                        case let other?: tally.frozenOther.append(other)
                        case nil: break
                        }
                    }
                    return tally
                }
            }
            var sum = Tally()
            for try await part in group {
                sum.whole += part.whole
                sum.partial += part.partial
                sum.liveErrors += part.liveErrors
                sum.frozenTimeouts += part.frozenTimeouts
                sum.frozenOther += part.frozenOther
            }
            return sum
        }
        let frozenAsked = (Self.clients + 4) / 5 * rounds
        #expect(tally.whole == Self.clients * rounds, "whole snapshots of the live app: \(tally.whole) of \(Self.clients * rounds); partial \(tally.partial.prefix(5)), errors \(tally.liveErrors.prefix(5))")
        #expect(tally.frozenTimeouts == frozenAsked, "-32004 for the frozen app: \(tally.frozenTimeouts) of \(frozenAsked); other answers \(tally.frozenOther.prefix(5))")
        #expect(try await probe.call("daemon.ping") == "pong")
        let rss = Soak.rssKiB(daemon.pid)
        let fds = Soak.fdCount(daemon.pid)

        kill(frozen.pid, SIGCONT)
        let thawed = await Flows.eventually(timeout: 20) {
            (try? await probe.call("tree.snapshot", ["app": .string(frozen.name)]))?["nodes"]?.arrayValue?.isEmpty == false
        }
        #expect(thawed, "the app was not served again after SIGCONT")
        Soak.report("frozen", "\(Self.clients) clients × \(rounds) rounds in \(Soak.seconds(since: started)): \(tally.whole) whole snapshots of "
            + "\(liveNodes) nodes, \(tally.frozenTimeouts) of \(frozenAsked) requests to the frozen app answered -32004; daemon fds \(fds), RSS \(rss) KiB under load")
    }

    /// What a snapshot of the frozen app ended with: its error code, or what else came back.
    static func frozenAnswer(_ client: DeskgateClient, _ app: String) async -> String {
        do {
            let result = try await client.call("tree.snapshot", ["app": .string(app)])
            return "a result: \(JSONWriter.string(result).prefix(200))"
        } catch let error as RPCError {
            return error.code == .appNotResponding ? "-32004" : "\(error)"
        } catch {
            return "\(error)"
        }
    }
}
