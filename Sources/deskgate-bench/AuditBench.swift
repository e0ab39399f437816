// FoundationEssentials only: full Foundation would map ICU and libstdc++ into the daemon.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Audit
import Glibc
import JSONRPC
import Logging

/// `make bench`: audited decisions per second with fsync group commit, and append latency.
enum AuditBenchmark {
    /// Runs in a fresh subdirectory of `directory` (removed afterwards) with the journal off and
    /// returns a short report: one appender (latency = one fdatasync), then 16 concurrent
    /// appenders (group commit) for throughput and latency percentiles.
    static func run(directory: String) async -> String {
        let dir = directory + "/audit-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var logger = Logger(label: "audit-bench")
        logger.logLevel = .error
        let log: AuditLog
        do {
            log = try AuditLog.open(config: AuditConfig(directory: dir, journal: .off), logger: logger)
        } catch {
            return "audit bench: cannot open \(dir): \(error)"
        }
        let clock = ContinuousClock()
        func entry(_ worker: Int, _ n: Int) -> AuditEntry {
            AuditEntry(
                kind: "decision", auditID: "bench-\(worker)-\(n)",
                client: ["uid": 1000, "pid": 4242, "exe": "/usr/bin/python3", "script": "/home/u/agent.py", "unit": "app-agent.scope", "label": "agent"],
                method: "element.activate",
                target: ["app": "org.gnome.TextEditor", "app_exe": "/usr/bin/gnome-text-editor", "role": "push button", "name": "Save", "ref": "e:1:42"],
                decision: ["effect": "allow", "reason": "grant", "rule": "user:grants.toml#3"])
        }
        func outcome(_ worker: Int, _ n: Int) -> AuditEntry {
            AuditEntry(
                kind: "outcome", auditID: "bench-\(worker)-\(n)",
                client: ["uid": 1000, "pid": 4242, "exe": "/usr/bin/python3"], method: "element.activate",
                outcome: .ok, durationMs: 3.25)
        }
        func percentile(_ values: [Duration], _ p: Double) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            let d = sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        }
        var lines: [String] = []
        do {
            for n in 0..<100 {  // warm-up
                _ = try await log.append(entry(99, n))
                _ = try await log.append(outcome(99, n))
            }

            var single: [Duration] = []
            for n in 0..<500 {
                var t0 = clock.now
                _ = try await log.append(entry(0, n))
                single.append(clock.now - t0)
                t0 = clock.now
                _ = try await log.append(outcome(0, n))
                single.append(clock.now - t0)
            }
            lines.append(
                cFormat(
                    "audit append, 1 appender:    p50 %.3f ms  p99 %.3f ms (one fdatasync each)",
                    percentile(single, 0.5), percentile(single, 0.99)))

            let before = log.batchStatistics()
            let workers = 16
            let perWorker = 1000
            let start = clock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        var mine: [Duration] = []
                        mine.reserveCapacity(perWorker)
                        // A request's two durable records: the decision, then its outcome.
                        for n in 0..<perWorker / 2 {
                            var t0 = clock.now
                            _ = try await log.append(entry(worker + 1, n))
                            mine.append(clock.now - t0)
                            t0 = clock.now
                            _ = try await log.append(outcome(worker + 1, n))
                            mine.append(clock.now - t0)
                        }
                        return mine
                    }
                }
                var all: [Duration] = []
                for try await part in group { all += part }
                return all
            }
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            lines.append(
                cFormat(
                    "audit append, 16 appenders:  %.0f records/s = %.0f audited requests/s (decision + outcome)  p50 %.3f ms  p99 %.3f ms (%d records, group commit)",
                    Double(latencies.count) / seconds, Double(latencies.count) / 2 / seconds, percentile(latencies, 0.5),
                    percentile(latencies, 0.99), latencies.count))
            let after = log.batchStatistics()
            lines.append(
                cFormat(
                    "  group commit: %d batches, %.1f records per fdatasync",
                    after.batches - before.batches,
                    Double(after.records - before.records) / Double(max(1, after.batches - before.batches))))
            lines.append(cFormat("raw write+fdatasync of one line in the same directory: p50 %.3f ms (the floor for one appender)", rawSync(dir)))
            let verification = await log.verify()
            lines.append("audit chain after bench: \(verification.ok ? "verifies" : "BROKEN") (\(verification.records) records)")
        } catch {
            lines.append("audit bench failed: \(error)")
        }
        await log.close()
        // Start-up cost: open re-verifies the whole chain.
        let t0 = clock.now
        if let reopened = try? AuditLog.open(config: AuditConfig(directory: dir, journal: .off), logger: logger) {
            let d = clock.now - t0
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            let records = reopened.health.lastSeq
            lines.append(cFormat("audit open (verifies the chain): %.0f ms for %lld records (%.0f records/s)", seconds * 1000, records, Double(records) / seconds))
            await reopened.close()
        }
        return lines.joined(separator: "\n")
    }

    /// p50 of 300 one-line appends each followed by fdatasync, without the log (the disk's floor).
    static func rawSync(_ dir: String) -> Double {
        let path = dir + "/raw-sync-probe"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return -1 }
        defer {
            close(fd)
            unlink(path)
        }
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: 600) + [0x0A]
        let clock = ContinuousClock()
        var samples: [Double] = []
        for _ in 0..<300 {
            let t0 = clock.now
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            _ = fdatasync(fd)
            let d = clock.now - t0
            samples.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
        }
        return samples.sorted()[samples.count / 2]
    }
}
