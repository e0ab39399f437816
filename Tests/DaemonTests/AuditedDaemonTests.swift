#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import TestSupport
import Testing

/// The audit log behind a real daemon, without a desktop: admin methods are gated and audited.
@Suite("Audit log behind the daemon", .serialized)
struct AuditedDaemonTests {
    static let allowAdmin = """
        default = "deny"
        [[rule]]
        id = "admin"
        effect = "allow"
        actions = ["admin"]
        """

    @Test("kill -9 at random points while clients make audited requests: after each restart `deskgate audit verify` passes and every answered request is in the log (20 cycles; make soak: 200)")
    func crashInjection() async throws {
        let cycles = Soak.count("DESKGATE_SOAK_KILL_CYCLES", short: 20, full: 200)
        let seed = FuzzSettings.seed
        let replay = "seed \(seed) (replay the kill points: DESKGATE_FUZZ_SEED=\(seed))"
        print("kill -9 cycles: \(cycles), \(replay)")
        var rng = SplitMix64(seed: seed)
        let dir = TempDirectory("crash")
        defer { dir.remove() }
        let state = dir.file("state")
        let started = ContinuousClock.now
        // Each request is made under a label of its own (session.hello, then grants.list on the
        // same connection), so the log shows exactly which answered requests it holds.
        var answered: [String] = []
        var checkedAfterRestart = 0
        var rssAtStart: [Int] = []
        for cycle in 0...cycles {
            let daemon = try DaemonProcess(arguments: ["--state-dir", state], userPolicy: Self.allowAdmin)
            rssAtStart.append(Soak.rssKiB(daemon.pid))
            if cycle > 0 {
                // Recovery ran at start: the chain must verify, checked the way a person would.
                let verify = try CLI.run(["audit", "verify", "--socket", daemon.socketPath])
                #expect(verify.status == 0, "\(replay), restart \(cycle): deskgate audit verify: \(verify.stdout) \(verify.stderr)")
                let missing = Self.missingAnswered(answered, in: auditRecords(in: state + "/audit"))
                checkedAfterRestart += answered.count
                #expect(missing.isEmpty, "\(replay), restart \(cycle): \(missing.count) of \(answered.count) answered requests not in the log: \(missing.prefix(5))")
                if verify.status != 0 || !missing.isEmpty {
                    daemon.stop()
                    break
                }
            }
            if cycle == cycles {
                #expect(daemon.process.isRunning)
                daemon.stop()
                break
            }
            let killAfter = UInt64.random(in: 2_000...150_000, using: &rng)
            // Four clients make audited requests back to back; the daemon dies at a random moment.
            try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var done: [String] = []
                        guard let client = try? await daemon.client() else { return done }
                        defer { client.closeNow() }
                        for i in 0..<1000 {
                            let label = "c\(cycle)-w\(worker)-r\(i)"
                            do {
                                _ = try await client.call("session.hello", ["client": .string(label)])
                                _ = try await client.call("grants.list", ["interactive": false])
                                done.append(label)
                            } catch {
                                break
                            }
                        }
                        return done
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .microseconds(killAfter))
                    kill(daemon.pid, SIGKILL)
                    return []
                }
                for try await labels in group { answered += labels }
            }
            daemon.stop(signal: SIGKILL)
        }
        #expect(answered.count > 0)
        // Seqs are gapless across all the crashes.
        let records = auditRecords(in: state + "/audit")
        let seqs = records.compactMap { $0["seq"]?.intValue }
        #expect(seqs == Array(seqs.indices).map { Int64($0) + (seqs.first ?? 0) }, "\(replay)")
        Soak.report("kill9", "\(cycles) kill -9 cycles in \(Soak.seconds(since: started)), \(answered.count) answered audited requests, "
            + "\(checkedAfterRestart) answered-request checks after restarts, \(records.count) records, seq \(seqs.first ?? -1)...\(seqs.last ?? -1); "
            + "daemon RSS at start \(rssAtStart.min() ?? -1)–\(rssAtStart.max() ?? -1) KiB; \(replay)")
    }

    /// The labels in `answered` without both a decision and an `ok` outcome record of
    /// grants.list under that label.
    static func missingAnswered(_ answered: [String], in records: [JSONValue]) -> [String] {
        var decided: Set<String> = []
        var done: Set<String> = []
        for record in records where record["method"] == "grants.list" {
            guard let label = record["client"]?["label"]?.stringValue else { continue }
            if record["kind"] == "decision" { decided.insert(label) }
            if record["kind"] == "outcome" && record["outcome"] == "ok" { done.insert(label) }
        }
        return answered.filter { !decided.contains($0) || !done.contains($0) }
    }

    @Test("a full disk fails gated requests with -32007 while ping, info and revoking still work; it recovers when space returns")
    func fullDisk() async throws {
        let dir = TempDirectory("fulldisk")
        defer { dir.remove() }
        let mountPoint = dir.file("small")
        mkdir(mountPoint, 0o700)
        let (mounted, output) = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=96k", "tmpfs", mountPoint])
        try #require(mounted == 0, "cannot mount a small tmpfs (needs root): \(output)")
        defer { _ = try? run("/bin/umount", ["-l", mountPoint]) }
        let daemon = try DaemonProcess(arguments: ["--state-dir", mountPoint + "/state"], userPolicy: Self.allowAdmin)
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        #expect(try await client.call("grants.list")["grants"] != nil)
        // Fill the file system.
        let filler = mountPoint + "/filler"
        let fd = open(filler, O_CREAT | O_WRONLY, 0o600)
        let chunk = [UInt8](repeating: 0x41, count: 4096)
        while write(fd, chunk, chunk.count) > 0 {}
        close(fd)
        var refused = 0
        for _ in 0..<20 {
            do {
                _ = try await client.call("grants.list")
            } catch let error as RPCError where error.code == .auditUnavailable {
                refused += 1
            }
        }
        // Once the first request is refused, every later one is too (a little space may remain at first).
        #expect(refused >= 15, "gated requests must fail closed once the log cannot be written")
        #expect(try await client.call("daemon.ping") == "pong")
        let info = try await client.call("daemon.info")
        #expect(info["audit"]?["writable"] == false, "\(info)")
        // Revoking is never blocked by an unwritable audit log.
        #expect(try await client.call("grants.revoke_all")["revoked"] == 0)
        // Space returns: the log writes again and the chain is intact.
        unlink(filler)
        var recovered = false
        for _ in 0..<20 where !recovered {
            recovered = (try? await client.call("grants.list")) != nil
        }
        #expect(recovered)
        #expect(try await client.call("audit.verify")["ok"] == true)
    }

    @Test("audit.query filters by method and decision; admin methods need an admin rule")
    func queryAndGating() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowAdmin)
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        _ = try await client.call("grants.list")
        let result = try await client.call("audit.query", ["method": "grants.list", "limit": 10])
        let records = result["records"]?.arrayValue ?? []
        #expect(records.count == 2)
        #expect(records.first?["client"]?["exe"]?.stringValue == (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")))
        let policyLoads = try await client.call("audit.query", ["limit": 100])["records"]?.arrayValue?.filter { $0["kind"] == "policy_load" } ?? []
        #expect(policyLoads.contains { $0["details"]?["sha256"]?.stringValue?.count == 64 })

        let locked = try DaemonProcess(userPolicy: "default = \"deny\"\n")
        defer { locked.stop() }
        let other = try await locked.client()
        defer { other.closeNow() }
        do {
            _ = try await other.call("audit.query", ["limit": 1])
            Issue.record("audit.query allowed without a rule")
        } catch let error as RPCError {
            #expect(error.code == .denied && error.data?["class"] == "admin")
        }
    }

    @Test("a broken policy file denies everything with policy_error, and says so in daemon.info")
    func brokenPolicy() async throws {
        let daemon = try DaemonProcess(userPolicy: "[[rule]]\neffect = \"allow\"\nactions = [\"admin\"]\nbogus = 1\n")
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        do {
            _ = try await client.call("grants.list")
            Issue.record("a broken policy file allowed a request")
        } catch let error as RPCError {
            #expect(error.data?["reason"] == "policy_error")
        }
        let info = try await client.call("daemon.info")
        #expect(JSONWriter.string(info["broker"] ?? .null).contains("bogus"))
        #expect(try await client.call("grants.revoke_all")["revoked"] == 0)
    }

    func auditRecords(in dir: String) -> [JSONValue] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        return files.flatMap { file in
            ((try? String(contentsOfFile: dir + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        }
    }
}
