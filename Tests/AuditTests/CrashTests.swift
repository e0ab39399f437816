import Audit
import Foundation
import Glibc
import JSONRPC
import Testing

@Suite("Audit crash injection")
struct CrashTests {
    struct CycleLog: Sendable {
        var acked: [Int64: String] = [:]
        var kills = 0
        var syntheticTears = 0
    }

    /// Kills a writer (4 concurrent appenders) with SIGKILL at random moments, 60 times; half the
    /// runs split writes into 7-byte pieces so kills tear lines, and every 6th cycle also leaves a
    /// half line behind by hand. Each restart recovers; at the end every acknowledged record is
    /// present with the hash it was acknowledged with, the chain verifies, and every torn tail was
    /// quarantined with a recovered record.
    @Test("kill -9 at random points: every acknowledged record survives, the chain verifies")
    func crashCycles() async throws {
        let tmp = TempDir("crash")
        defer { tmp.remove() }
        let dir = tmp.auditDir
        let writer = CrashWriter.path
        try #require(FileManager.default.isExecutableFile(atPath: writer), "build audit-crash-writer first")

        let cycles = try await blocking { () throws -> CycleLog in
            var log = CycleLog()
            var generator = SystemRandomNumberGenerator()
            for cycle in 0..<60 {
                if cycle % 6 == 5, let last = segmentFiles(dir).last, let handle = FileHandle(forWritingAtPath: last) {
                    handle.seekToEndOfFile()
                    handle.write(Data(#"{"kind":"decision","seq":"#.utf8))
                    try handle.close()
                    log.syntheticTears += 1
                }
                let args = cycle % 2 == 0 ? [dir, "4"] : [dir, "4", "7"]
                let child = try ChildProcess(writer, args)
                // Wait for READY (recovery done), then let it run a random while.
                let start = Date()
                while !child.output.contains("READY"), Date().timeIntervalSince(start) < 20 {
                    if !child.read(timeoutMs: 50) { break }
                }
                let runFor = Double.random(in: 0.002...0.060, using: &generator)
                let until = Date().addingTimeInterval(runFor)
                while Date() < until { child.read(timeoutMs: 1) }
                kill(child.pid, SIGKILL)
                let signal = child.finish()
                if signal == SIGKILL { log.kills += 1 }
                for line in child.output.split(separator: "\n") where line.hasPrefix("ACK ") {
                    let parts = line.split(separator: " ")
                    // The last line may be cut by the kill itself; only whole ACK lines count.
                    if parts.count == 3, parts[2].count == 64, let seq = Int64(parts[1]) { log.acked[seq] = String(parts[2]) }
                }
                if child.output.contains("open failed") || child.output.contains("ERR ") {
                    throw POSIXError(.EIO, userInfo: [NSLocalizedDescriptionKey: child.output])
                }
            }
            return log
        }
        #expect(cycles.kills >= 50)
        #expect(cycles.acked.count > 100)

        let log = try openLog(dir)
        #expect(log.health.firstBadSeq == nil)
        let verification = await log.verify()
        #expect(verification.ok, "\(verification.reason ?? "")")
        await log.close()

        let all = records(dir)
        var hashes: [Int64: String] = [:]
        for record in all { if let seq = record["seq"]?.intValue { hashes[seq] = record["hash"]?.stringValue } }
        let missing = cycles.acked.filter { hashes[$0.key] != $0.value }
        #expect(missing.count == 0, "acknowledged but missing or different: \(missing.keys.sorted().prefix(10))")
        #expect(all.map { $0["seq"]?.intValue ?? 0 } == Array(1...Int64(all.count)))
        #expect(!all.contains { $0["kind"]?.stringValue == "integrity_break" })

        let recovered = all.filter { $0["kind"]?.stringValue == "recovered" }
        let quarantined = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/quarantine")) ?? []
        #expect(recovered.count == quarantined.count)
        #expect(recovered.count >= cycles.syntheticTears)
        let recoveredFiles = Set(recovered.compactMap { $0["details"]?["quarantine"]?.stringValue })
        #expect(recoveredFiles == Set(quarantined.map { "quarantine/" + $0 }))
        let unknownCount = all.filter { $0["outcome"]?.stringValue == "unknown" }.count
        print(
            "crash cycles: \(cycles.kills) kills, \(cycles.acked.count) acknowledged, \(all.count) records, "
                + "\(recovered.count) torn tails recovered (\(cycles.syntheticTears) made by hand), \(unknownCount) unknown outcomes")
        // Decisions cut off by a kill were closed as unknown, never left open.
        let unknown = all.filter { $0["outcome"]?.stringValue == "unknown" }
        #expect(unknown.allSatisfy { $0["details"]?["decision_seq"]?.intValue != nil })
    }
}
