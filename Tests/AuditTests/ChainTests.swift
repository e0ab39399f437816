import Audit
import Crypto
import Foundation
import JSONRPC
import Synchronization
import Testing

@Suite("Audit chain")
struct ChainTests {
    @Test("records are canonical, gapless and chained; an independent SHA-256 matches every hash")
    func chainVerifies() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        var seqs: [Int64] = []
        for n in 1...25 {
            seqs.append(try await log.append(decision(n)).seq)
            seqs.append(try await log.append(outcome(n)).seq)
        }
        #expect(seqs == Array(1...50))
        let verification = await log.verify()
        #expect(verification.ok)
        #expect(verification.records == 50)
        #expect(verification.firstBadSeq == nil)
        await log.close()

        var prev = String(repeating: "0", count: 64)
        for (i, line) in allLines(tmp.auditDir).enumerated() {
            let value = try JSONParser.parse(Array(line.utf8))
            // Canonical: re-serialising with sorted keys gives the same bytes.
            #expect(JSONWriter.string(value, sortedKeys: true) == line)
            var object = try #require(value.objectValue)
            #expect(object["seq"]?.intValue == Int64(i + 1))
            #expect(object["prev"]?.stringValue == prev)
            let hash = try #require(object["hash"]?.stringValue)
            object["hash"] = nil
            let digest = SHA256.hash(data: JSONWriter.bytes(.object(object), sortedKeys: true))
            #expect(digest.map { String(format: "%02x", $0) }.joined() == hash)
            let time = try #require(object["time"]?.stringValue)
            #expect(time.count == 27 && time.hasSuffix("Z"))
            prev = hash
        }
    }

    @Test("directory is 0700, segments and key are 0600")
    func permissions() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        _ = try await log.append(decision(1))
        await log.close()
        #expect(fileMode(tmp.auditDir) == 0o700)
        #expect(fileMode(tmp.auditDir + "/hmac.key") == 0o600)
        for file in segmentFiles(tmp.auditDir) { #expect(fileMode(file) == 0o600) }
    }

    enum Tamper: String, CaseIterable, Sendable {
        case edit, delete, reorder, duplicate, insertResealed
    }

    /// Writes 20 records, tampers with the middle, and returns the directory.
    static func tamperedLog(_ how: Tamper, _ tmp: TempDir) async throws {
        let log = try openLog(tmp.auditDir)
        for n in 1...10 {
            _ = try await log.append(decision(n))
            _ = try await log.append(outcome(n))
        }
        await log.close()
        let path = try #require(segmentFiles(tmp.auditDir).first)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        switch how {
        case .edit:
            lines[9] = lines[9].replacingOccurrences(of: "element.activate", with: "element.focus")
        case .delete:
            lines.remove(at: 9)
        case .reorder:
            lines.swapAt(9, 10)
        case .duplicate:
            lines.insert(lines[8], at: 9)
        case .insertResealed:
            // A forged record with a correct hash, seq 10 and prev = hash of 9: the chain is good
            // through the forgery and breaks at the original record 10 that follows it.
            var forged = try #require(try JSONParser.parse(Array(lines[9].utf8)).objectValue)
            forged["method"] = "text.set"
            forged["hash"] = nil
            let hash = SHA256.hash(data: JSONWriter.bytes(.object(forged), sortedKeys: true))
                .map { String(format: "%02x", $0) }.joined()
            forged["hash"] = .string(hash)
            lines.insert(JSONWriter.string(.object(forged), sortedKeys: true), at: 9)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test("tampering in the middle is reported at the first bad seq, logged once, never repaired", arguments: Tamper.allCases)
    func tamperDetected(_ how: Tamper) async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        try await Self.tamperedLog(how, tmp)
        let expected: Int64 = how == .insertResealed ? 11 : 10

        let offline = try AuditVerifier.verify(directory: tmp.auditDir, journal: false)
        #expect(!offline.ok)
        #expect(offline.firstBadSeq == expected)

        // Start-up: reported in health, an integrity_break record chained to the last line.
        let log = try openLog(tmp.auditDir)
        #expect(log.health.firstBadSeq == expected)
        let lastBefore = log.health.lastSeq
        let receipt = try await log.append(decision(99))
        #expect(receipt.seq == lastBefore + 1)
        let verification = await log.verify()
        #expect(!verification.ok)
        #expect(verification.firstBadSeq == expected)
        await log.close()

        let breaks = records(tmp.auditDir).filter { $0["kind"]?.stringValue == "integrity_break" }
        #expect(breaks.count == 1)
        #expect(breaks.first?["details"]?["first_bad_seq"]?.intValue == expected)

        // A second start does not add another integrity_break, and still reports the break.
        let again = try openLog(tmp.auditDir)
        #expect(again.health.firstBadSeq == expected)
        #expect(await again.verify().firstBadSeq == expected)
        await again.close()
        #expect(records(tmp.auditDir).filter { $0["kind"]?.stringValue == "integrity_break" }.count == 1)
    }

    @Test("deleting the first records without a pruned record is detected")
    func headTruncationDetected() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        for n in 1...10 { _ = try await log.append(decision(n)) }
        await log.close()
        let path = try #require(segmentFiles(tmp.auditDir).first)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        try (lines.dropFirst(3).joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: false)
        #expect(!verification.ok)
        #expect(verification.firstBadSeq == 4)
    }

    @Test("a torn last line is quarantined, cut off, and a recovered record written")
    func tornTail() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        for n in 1...10 { _ = try await log.append(outcome(n)) }
        await log.close()
        let path = try #require(segmentFiles(tmp.auditDir).last)
        let torn = Array(#"{"client":{"exe":"/usr/bin/agent"},"kind":"decis"#.utf8)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(torn))
        try handle.close()

        let reopened = try openLog(tmp.auditDir)
        #expect(reopened.health.firstBadSeq == nil)
        #expect(reopened.health.lastSeq == 11)
        let verification = await reopened.verify()
        #expect(verification.ok)
        let next = try await reopened.append(outcome(11))
        #expect(next.seq == 12)
        await reopened.close()

        let quarantined = try FileManager.default.contentsOfDirectory(atPath: tmp.auditDir + "/quarantine")
        #expect(quarantined.count == 1)
        let saved = try #require(FileManager.default.contents(atPath: tmp.auditDir + "/quarantine/" + quarantined[0]))
        #expect([UInt8](saved) == torn)
        let all = records(tmp.auditDir)
        #expect(all.count == 12)
        let recovered = try #require(all.first { $0["kind"]?.stringValue == "recovered" })
        #expect(recovered["seq"]?.intValue == 11)
        #expect(recovered["details"]?["bytes"]?.intValue == Int64(torn.count))
        let digest = SHA256.hash(data: torn).map { String(format: "%02x", $0) }.joined()
        #expect(recovered["details"]?["sha256"]?.stringValue == digest)
        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)
    }

    @Test("a decision without an outcome gets outcome unknown at the next start")
    func unknownOutcome() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        _ = try await log.append(decision(1))
        _ = try await log.append(outcome(1))
        _ = try await log.append(decision(2))
        await log.close()
        let reopened = try openLog(tmp.auditDir)
        await reopened.close()
        let all = records(tmp.auditDir)
        #expect(all.count == 4)
        let last = try #require(all.last)
        #expect(last["kind"]?.stringValue == "outcome")
        #expect(last["request_id"]?.stringValue == "r2")
        #expect(last["outcome"]?.stringValue == "unknown")
        #expect(last["details"]?["decision_seq"]?.intValue == 3)
        // Resolved: a further restart adds nothing.
        let third = try openLog(tmp.auditDir)
        await third.close()
        #expect(records(tmp.auditDir).count == 4)
    }

    @Test("rotation keeps one chain across segments; pruning by size and age leaves it verifiable")
    func rotationAndPruning() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir, segmentMaxBytes: 4096)
        for n in 1...60 { _ = try await log.append(decision(n)) }
        #expect(await log.verify().ok)
        await log.close()
        let segmentsBefore = segmentFiles(tmp.auditDir)
        #expect(segmentsBefore.count >= 5)
        // Each segment after the first starts with the record after the previous segment's last.
        #expect(records(tmp.auditDir).map { $0["seq"]?.intValue ?? 0 } == Array(1...60))

        // Size: keep at most ~8 KB.
        let bySize = try openLog(tmp.auditDir, segmentMaxBytes: 4096, maxBytes: 8192)
        #expect(await bySize.verify().ok)
        await bySize.close()
        let afterSize = segmentFiles(tmp.auditDir)
        #expect(afterSize.count < segmentsBefore.count)
        let remaining = records(tmp.auditDir)
        let pruned = try #require(remaining.last { $0["kind"]?.stringValue == "pruned" })
        let first = try #require(remaining.first)
        #expect(pruned["details"]?["through_seq"]?.intValue == (first["seq"]?.intValue ?? 0) - 1)
        #expect(pruned["details"]?["last_pruned_hash"]?.stringValue == first["prev"]?.stringValue)
        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)

        // Age: retention 0 days prunes every segment but the current one.
        let byAge = try openLog(tmp.auditDir, segmentMaxBytes: 4096, retentionDays: 0)
        await byAge.close()
        #expect(segmentFiles(tmp.auditDir).count == 1)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: false)
        #expect(verification.ok)
        #expect(verification.lastSeq == (records(tmp.auditDir).last?["seq"]?.intValue))

        // Deleting a middle segment by hand is a break, not a prune.
        let log2 = try openLog(tmp.auditDir, segmentMaxBytes: 2048)
        for n in 1...40 { _ = try await log2.append(decision(n)) }
        await log2.close()
        let files = segmentFiles(tmp.auditDir)
        #expect(files.count >= 3)
        try FileManager.default.removeItem(atPath: files[1])
        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok == false)
    }

    @Test("16 concurrent appenders: every append durable, seq gapless, chain verifies")
    func groupCommit() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        let seqs = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var mine: [Int64] = []
                    for n in 0..<50 { mine.append(try await log.append(outcome(worker * 1000 + n)).seq) }
                    return mine
                }
            }
            var all: [Int64] = []
            for try await part in group { all += part }
            return all
        }
        #expect(seqs.sorted() == Array(1...800))
        await log.close()
        // Re-read from disk by a new instance.
        let reopened = try openLog(tmp.auditDir)
        let verification = await reopened.verify()
        #expect(verification.ok)
        #expect(verification.records == 800)
        await reopened.close()
    }

    @Test("query filters by seq, time, exe, method and decision, oldest first, bounded")
    func query() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir, segmentMaxBytes: 4096)
        for n in 1...30 {
            _ = try await log.append(
                decision(n, exe: n % 3 == 0 ? "/usr/bin/other" : "/usr/bin/agent", method: n % 2 == 0 ? "text.set" : "element.activate",
                    effect: n % 5 == 0 ? "deny" : "allow"))
        }
        let midTime = try #require(try await log.query(AuditFilter(sinceSeq: 20, limit: 1)).records.first?["time"]?.stringValue)
        for n in 31...35 { _ = try await log.append(outcome(n)) }

        let bySeq = try await log.query(AuditFilter(sinceSeq: 25))
        #expect(bySeq.records.map { $0["seq"]?.intValue ?? 0 } == Array(25...35))
        #expect(bySeq.lastSeq == 35)
        let byExe = try await log.query(AuditFilter(clientExe: "/usr/bin/other"))
        #expect(byExe.records.count == 10)
        let byMethod = try await log.query(AuditFilter(method: "text.set"))
        #expect(byMethod.records.count == 15)
        let denied = try await log.query(AuditFilter(decision: "deny"))
        #expect(denied.records.map { $0["seq"]?.intValue ?? 0 } == [5, 10, 15, 20, 25, 30])
        let limited = try await log.query(AuditFilter(limit: 7))
        #expect(limited.records.map { $0["seq"]?.intValue ?? 0 } == Array(1...7))
        let byTime = try await log.query(AuditFilter(json: ["since": .string(midTime)]))
        #expect(byTime.records.first?["seq"]?.intValue == 20)

        #expect(throws: AuditError.self) { try AuditFilter(json: ["limit": 1001]) }
        #expect(throws: AuditError.self) { try AuditFilter(json: ["since": "yesterday"]) }
        #expect(throws: AuditError.self) { try AuditFilter(json: ["bogus": 1]) }
        do {
            _ = try AuditFilter(json: ["limit": 0])
            Issue.record("limit 0 accepted")
        } catch {
            #expect({ if case .invalidFilter(field: "limit", _) = error { true } else { false } }(), "\(error)")
        }
        await log.close()
    }

    @Test("RFC 3339 times round-trip and parse offsets")
    func times() {
        #expect(RFC3339.format(micros: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(RFC3339.format(micros: 1_795_000_000_123_456) == "2026-11-18T11:06:40.123456Z")
        #expect(RFC3339.parse("2026-11-18T11:06:40.123456Z") == 1_795_000_000_123_456)
        #expect(RFC3339.parse("2026-11-18T13:06:40.5+02:00") == 1_795_000_000_500_000)
        #expect(RFC3339.parse("2024-02-29T00:00:00Z") == 1_709_164_800_000_000)
        #expect(RFC3339.parse("2026-11-18 18:13:20Z") == nil)
        #expect(RFC3339.parse("2026-13-18T18:13:20Z") == nil)
        #expect(RFC3339.parse("2026-11-18T18:13:20") == nil)
    }
}

@Suite("Audit retention by age")
struct RetentionTests {
    /// Writes a valid chain (independently of the Audit module) whose records are `daysAgo` old.
    static func writeOldSegment(_ dir: String, count: Int, daysAgo: Int) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var prev = String(repeating: "0", count: 64)
        var text = ""
        let base = Date().addingTimeInterval(-Double(daysAgo) * 86400)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for seq in 1...count {
            let time = formatter.string(from: base.addingTimeInterval(Double(seq))).replacingOccurrences(of: "Z", with: "000Z")
            var record: JSONObject = ["kind": "grant_revoked", "seq": .int(Int64(seq)), "time": .string(time), "prev": .string(prev)]
            let hash = SHA256.hash(data: JSONWriter.bytes(.object(record), sortedKeys: true)).map { String(format: "%02x", $0) }.joined()
            record["hash"] = .string(hash)
            text += JSONWriter.string(.object(record), sortedKeys: true) + "\n"
            prev = hash
        }
        let path = dir + "/audit-00000000000000000001.jsonl"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test("a quiet log's old segment is closed at the next append and pruned past retention")
    func ageRotationAndPruning() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        try Self.writeOldSegment(tmp.auditDir, count: 5, daysAgo: 40)
        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)

        let log = try openLog(tmp.auditDir, retentionDays: 30)
        #expect(log.health.lastSeq == 5)
        let receipt = try await log.append(decision(1))
        #expect(receipt.seq == 6)
        let verification = await log.verify()
        #expect(verification.ok)
        await log.close()

        let files = segmentFiles(tmp.auditDir)
        #expect(files.count == 1)
        #expect(files.first?.hasSuffix("audit-00000000000000000006.jsonl") == true)
        let all = records(tmp.auditDir)
        #expect(all.map { $0["seq"]?.intValue ?? 0 } == [6, 7])
        let pruned = try #require(all.last)
        #expect(pruned["kind"]?.stringValue == "pruned")
        #expect(pruned["details"]?["through_seq"]?.intValue == 5)
        #expect(pruned["details"]?["segments"] == ["audit-00000000000000000001.jsonl"])
        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)
    }
}

/// A clock a test moves by hand (microseconds since the epoch).
final class TestClock: Sendable {
    private let micros: Mutex<Int64>
    init(_ micros: Int64) { self.micros = Mutex(micros) }
    var now: Int64 { micros.withLock { $0 } }
    func set(_ value: Int64) { micros.withLock { $0 = value } }
}

@Suite("Audit retention applied to an open log")
struct AppliedRetentionTests {
    static let day: Int64 = 86_400_000_000

    @Test("deferred retention prunes nothing until applied; 365 days keeps a 40-day-old segment, 30 prunes it; a hold stops pruning")
    func deferredRetention() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let realNow = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let clock = TestClock(realNow - 40 * Self.day)
        var config = AuditConfig(directory: tmp.auditDir, segmentMaxBytes: 1 << 20, journal: .off)
        config.clock = { clock.now }
        // Five records written 40 days ago by the real writer.
        let old = try AuditLog.open(config: config, logger: testLogger())
        for n in 1...5 { _ = try await old.append(outcome(n)) }
        await old.close()
        #expect(records(tmp.auditDir).first?["time"]?.stringValue == RFC3339.format(micros: realNow - 40 * Self.day))

        // Today, opened the way the daemon opens it: before the policy says what to keep.
        clock.set(realNow)
        config.deferRetention = true
        let log = try AuditLog.open(config: config, logger: testLogger())
        #expect(log.health.retention == nil)
        #expect(log.health.retentionHeld != nil)
        #expect(log.health.json["retention"]?["held"] != nil)
        // The first append closes the 40-day-old segment (age rotation); nothing is pruned yet.
        for n in 6...7 { _ = try await log.append(outcome(n)) }
        await log.settled()
        #expect(segmentFiles(tmp.auditDir).count == 2)

        log.applyRetention(AuditRetention(days: 365))
        await log.settled()
        #expect(log.health.retention == AuditRetention(days: 365))
        #expect(log.health.json["retention"]?["days"] == 365)
        #expect(segmentFiles(tmp.auditDir).count == 2)
        #expect(records(tmp.auditDir).first?["seq"] == 1)

        // A hold (the policy could not be read) takes retention out of force again.
        log.holdRetention(reason: "the admin policy did not load")
        await log.settled()
        #expect(log.health.retention == nil)
        #expect(log.health.retentionHeld == "the admin policy did not load")
        _ = try await log.append(outcome(8))
        await log.settled()
        #expect(segmentFiles(tmp.auditDir).count == 2)

        log.applyRetention(AuditRetention(days: 30))
        await log.settled()
        #expect(segmentFiles(tmp.auditDir).count == 1)
        let pruned = try #require(records(tmp.auditDir).last)
        #expect(pruned["kind"] == "pruned")
        #expect(pruned["details"]?["through_seq"] == 5)
        #expect(pruned["details"]?["retention_days"] == 30)
        #expect(await log.verify().ok)
        await log.close()
    }
}
