#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

/// An idle daemon sleeps: no timer or poll timeout wakes it. Voluntary context switches only
/// happen when a thread blocks again after waking, so machine load does not add to the count;
/// libdispatch's 1 Hz pool monitor (armed once any task ran on a global queue) gave 3 in 3 s.
@Suite("Idle daemon", .serialized)
struct IdleTests {
    /// Voluntary context switches of each of the process's threads so far, by thread id.
    static func wakeUps(_ pid: Int32) -> [String: Int] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var counts: [String: Int] = [:]
        for tid in tasks {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("voluntary_ctxt_switches:") }),
                  let count = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
            else { continue }
            counts[tid] = count
        }
        return counts
    }

    /// Wake-ups between two samples, over the threads alive in both (an idle pool thread that
    /// exits takes its count with it; a new thread starts from zero).
    static func woken(_ before: [String: Int], _ after: [String: Int]) -> Int {
        after.reduce(0) { total, entry in total + max(0, entry.value - (before[entry.key] ?? 0)) }
    }

    @Test("no periodic wake-ups after serving requests (tasks, audit writes and reads, a timed sleep) and a SIGHUP reload")
    func noPeriodicWakeUps() async throws {
        let daemon = try DaemonProcess(arguments: ["--enable-test-methods"], userPolicy: AuditedDaemonTests.allowAdmin)
        defer { daemon.stop() }
        let client = try await daemon.client()
        _ = try await client.call("daemon.info")  // a task (not served inline)
        _ = try await client.call("grants.list")  // audited: the audit writer queue
        _ = try await client.call("audit.query", ["limit": 1])  // an audit reader thread
        _ = try await client.call("debug.sleep", ["ms": 10])  // a timed wait (GlobalExecutor.sleep)
        await client.close()
        // A reload runs on the signal queue (a dispatch thread): it must not arm the pool monitor.
        kill(daemon.pid, SIGHUP)
        try LifecycleTests.waitForLog(daemon, "policies reloaded")
        // Let the after-work malloc trim (one second after the last request) come and go.
        try await Task.sleep(for: .milliseconds(2500))
        let before = Self.wakeUps(daemon.pid)
        try await Task.sleep(for: .seconds(3))
        let woken = Self.woken(before, Self.wakeUps(daemon.pid))
        #expect(woken <= 1, "the idle daemon woke \(woken) times in 3 s")
    }
}
