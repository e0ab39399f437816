import Audit
import Crypto
import Foundation
import Glibc
import JSONRPC
import Testing

/// `deskgate audit export` / `verify --bundle` at the Audit module's level, on real logs written by
/// `AuditLog` (no journal: the journal evidence is given as the journal would hold it, the
/// receipts' hashes; `JournalBundleTests` reads it from a real journald).
@Suite("Audit bundles: export and offline verification")
struct BundleTests {
    /// 2026-12-01T00:00:00Z.
    static let t0: Int64 = 1_796_083_200 * 1_000_000
    static func at(_ second: Int) -> Int64 { t0 + Int64(second) * 1_000_000 }

    /// A log of `count` decision records, record n written at t0 + n s, and the journal evidence
    /// a daemon would have left: checkpoints every `checkpointEvery` records and at the end, and
    /// a copy of every record's hash.
    struct Written {
        let dir: TempDir
        let receipts: [AuditReceipt]
        let evidence: AuditJournalEvidence
        var auditDir: String { dir.auditDir }
    }

    static func writeLog(count: Int = 60, checkpointEvery: Int = 25) async throws -> Written {
        let dir = TempDir("bundle")
        let clock = TestClock(at(0))
        var config = AuditConfig(directory: dir.auditDir, journal: .off)
        config.clock = { clock.now }
        let log = try AuditLog.open(config: config, logger: testLogger())
        var receipts: [AuditReceipt] = []
        for n in 1...count {
            clock.set(at(n))
            receipts.append(try await log.append(n % 2 == 0 ? outcome(n) : decision(n)))
        }
        await log.close()
        #expect(receipts.map(\.seq) == (1...count).map(Int64.init), "the log added records of its own")
        let checkpointSeqs = Set(stride(from: checkpointEvery, through: count, by: checkpointEvery)).union([count])
        let evidence = AuditJournalEvidence(
            checkpoints: receipts.filter { checkpointSeqs.contains(Int($0.seq)) }.map {
                JournalCheckpoint(seq: $0.seq, hash: $0.hash, realtimeMicros: UInt64(at(Int($0.seq))), exe: "/usr/bin/deskgated", reason: "periodic")
            },
            records: receipts.map { AuditJournalEvidence.RecordCopy(seq: $0.seq, hash: $0.hash) },
            writers: ["/usr/bin/deskgated"])
        return Written(dir: dir, receipts: receipts, evidence: evidence)
    }

    static func export(_ written: Written, since: Int, until: Int?, journal: AuditBundleJournalSource? = nil) throws -> AuditBundleExport {
        try AuditBundle.export(
            directory: written.auditDir, sinceMicros: at(since), untilMicros: until.map(at), journal: journal ?? .given(written.evidence))
    }

    static func parse(_ bytes: [UInt8]) throws -> JSONObject { try #require(try JSONParser.parse(bytes).objectValue) }

    /// The bundle after `change`, serialized again.
    static func tampered(_ bytes: [UInt8], _ change: (inout JSONObject) throws -> Void) throws -> [UInt8] {
        var root = try parse(bytes)
        try change(&root)
        return JSONWriter.bytes(.object(root), sortedKeys: true)
    }

    /// A record with its hash computed again, as a forger with the bundle in hand would.
    static func resealed(_ record: JSONObject) -> JSONObject {
        var body = record
        body["hash"] = nil
        var out = record
        out["hash"] = .string(Array(SHA256.hash(data: JSONWriter.bytes(.object(body), sortedKeys: true))).map { String(format: "%02x", $0) }.joined())
        return out
    }

    static func records(_ root: JSONObject) -> [JSONObject] { (root["records"]?.arrayValue ?? []).compactMap(\.objectValue) }

    @Test("export → verify: the range's records exactly as stored, anchored to the record before them, vouched for by the journal")
    func roundTrip() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        // Records 10…29: at or after t0+10 s, before t0+30 s.
        let export = try Self.export(written, since: 10, until: 30)
        #expect(export.firstSeq == 10 && export.lastSeq == 29 && export.records == 20)
        #expect(export.checkpoints == 1 && export.journalRecords == 21, "checkpoint 25; record copies 9…29")
        #expect(export.warnings.isEmpty, "\(export.warnings)")

        let root = try Self.parse(export.bytes)
        #expect(root["format"] == "deskgate-audit-bundle/1")
        #expect(root["previous"]?["seq"] == 9 && root["previous"]?["hash"]?.stringValue == written.receipts[8].hash)
        #expect(root["log"]?["log_id"]?.stringValue == (try AuditLog.logID(directory: written.auditDir)))
        // Exactly as stored: each bundled record serializes to its line in the segment file.
        let stored = allLines(written.auditDir)
        #expect(Self.records(root).map { String(decoding: JSONWriter.bytes(.object($0), sortedKeys: true), as: UTF8.self) }
            == Array(stored[9...28]))
        // The key never travels.
        let key = try #require(FileManager.default.contents(atPath: written.auditDir + "/hmac.key"))
        #expect(!contains(export.bytes, [UInt8](key)))
        #expect(!contains(export.bytes, Array([UInt8](key).map { String(format: "%02x", $0) }.joined().utf8)))

        let result = AuditBundle.verify(export.bytes)
        #expect(result.ok, "\(result.problems)")
        #expect(result.firstBadSeq == nil && result.records == 20 && result.firstSeq == 10 && result.lastSeq == 29)
        #expect(result.checkpointsMatched == 1 && result.journalRecordsMatched == 21)
        #expect(result.vouchedThrough == 29)
        #expect(result.anchorCheckpoint?.seq == 25 && result.anchorCheckpoint?.hash == written.receipts[24].hash)
        #expect(result.writers == ["/usr/bin/deskgated"] && result.journal)
    }

    @Test("the time range selects the records whose time lies in it; an empty range is an error")
    func timeRange() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        func seqs(_ since: Int, _ until: Int?) throws -> [Int64] {
            let root = try Self.parse(try Self.export(written, since: since, until: until).bytes)
            return Self.records(root).compactMap { $0["seq"]?.intValue }
        }
        #expect(try seqs(0, nil) == Array(1...60))
        #expect(try seqs(1, 2) == [1])
        #expect(try seqs(59, nil) == [59, 60])
        #expect(try seqs(45, 50) == Array(45...49))
        // Since is inclusive to the microsecond, until exclusive.
        let exact = try AuditBundle.export(
            directory: written.auditDir, sinceMicros: Self.at(7) + 1, untilMicros: Self.at(9) + 1, journal: .given(written.evidence))
        #expect(Self.records(try Self.parse(exact.bytes)).compactMap { $0["seq"]?.intValue } == [8, 9])
        #expect(throws: AuditError.self) { try Self.export(written, since: 61, until: nil) }
        #expect(throws: AuditError.self) { try Self.export(written, since: 20, until: 20) }
        do {
            _ = try Self.export(written, since: 100, until: 200)
            Issue.record("an empty range exported")
        } catch {
            #expect("\(error)".contains("no audit records") && "\(error)".contains("seq 1–60"), "\(error)")
        }
        // The whole log from record 1: anchored to the genesis hash, and it verifies.
        let whole = try Self.export(written, since: 0, until: nil)
        #expect(try Self.parse(whole.bytes)["previous"]?["hash"]?.stringValue == String(repeating: "0", count: 64))
        #expect(AuditBundle.verify(whole.bytes).ok)
    }

    @Test("the policy loads in effect at the range's start come from the last reload before it")
    func policyAtStart() async throws {
        let dir = TempDir("bundle-policy")
        defer { dir.remove() }
        let clock = TestClock(Self.at(0))
        var config = AuditConfig(directory: dir.auditDir, journal: .off)
        config.clock = { clock.now }
        let log = try AuditLog.open(config: config, logger: testLogger())
        func load(_ path: String, _ sha: String, at second: Int) async throws {
            clock.set(Self.at(second))
            _ = try await log.append(AuditEntry(kind: "policy_load", details: ["path": .string(path), "sha256": .string(sha)]))
        }
        try await load("/etc/deskgate/policy.d/a.toml", "a1", at: 1)
        try await load("/home/u/.config/deskgate/policy.toml", "u1", at: 1)
        clock.set(Self.at(2))
        _ = try await log.append(decision(1))
        try await load("/home/u/.config/deskgate/policy.toml", "u2", at: 3)  // a reload: a.toml is gone
        clock.set(Self.at(4))
        _ = try await log.append(decision(2))
        try await load("/home/u/.config/deskgate/policy.toml", "u3", at: 5)  // inside the range: a record of its own
        await log.close()
        let export = try AuditBundle.export(directory: dir.auditDir, sinceMicros: Self.at(4), untilMicros: nil, journal: .none)
        let root = try Self.parse(export.bytes)
        let atStart = (root["policy_at_start"]?.arrayValue ?? []).map { $0["details"]?["sha256"]?.stringValue }
        #expect(atStart == ["u2"])
        #expect(Self.records(root).compactMap { $0["details"]?["sha256"]?.stringValue } == ["u3"])
    }

    @Test("the policy files' SHA-256: admin *.toml files and the user file, a missing one said so")
    func policyFileDigests() throws {
        let dir = TempDir("bundle-policy-files")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path + "/etc", withIntermediateDirectories: true)
        try "default = \"deny\"\n".write(toFile: dir.path + "/etc/10-a.toml", atomically: true, encoding: .utf8)
        try "not policy".write(toFile: dir.path + "/etc/README", atomically: true, encoding: .utf8)
        let files = AuditBundle.policyFiles(systemPolicyDirectory: dir.path + "/etc", userPolicyFile: dir.path + "/policy.toml")
        let list = try #require(files.arrayValue)
        #expect(list.count == 2)
        let expected = Array(SHA256.hash(data: Array("default = \"deny\"\n".utf8))).map { String(format: "%02x", $0) }.joined()
        #expect(list[0]["path"]?.stringValue == dir.path + "/etc/10-a.toml" && list[0]["sha256"]?.stringValue == expected)
        #expect(list[0]["layer"] == "admin")
        #expect(list[1]["path"]?.stringValue == dir.path + "/policy.toml" && list[1]["missing"] == true)
    }

    @Test("a record whose field was changed is named as the first bad record")
    func changedField() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        let export = try Self.export(written, since: 10, until: 30)
        let bad = try Self.tampered(export.bytes) { root in
            var records = root["records"]!.arrayValue!
            var record = records[5].objectValue!  // seq 15
            record["method"] = "text.set"
            records[5] = .object(record)
            root["records"] = .array(records)
        }
        let result = AuditBundle.verify(bad)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 15, "\(result.problems)")
        #expect(result.problems.first?.contains("record 15 does not match its hash") == true, "\(result.problems)")
    }

    @Test("a record rewritten with its hash and every later one recomputed is caught by the journal copies")
    func rewrittenChain() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        let export = try Self.export(written, since: 10, until: 30)
        let bad = try Self.tampered(export.bytes) { root in
            var records = Self.records(root)
            var prev = root["previous"]!["hash"]!.stringValue!
            for i in records.indices {
                if records[i]["seq"] == 15 { records[i]["decision"] = ["effect": "deny", "reason": "rule", "rule": "r"] }
                records[i]["prev"] = .string(prev)
                records[i] = Self.resealed(records[i])
                prev = records[i]["hash"]!.stringValue!
            }
            root["records"] = .array(records.map { .object($0) })
        }
        // The chain alone is consistent again: only the journal evidence can tell.
        #expect(AuditBundle.verify(bad, requireJournal: false).problems.allSatisfy { $0.contains("journal") })
        let result = AuditBundle.verify(bad)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 15, "\(result.problems)")
        #expect(result.problems.contains { $0.contains("record 15 differs from its journal copy") }, "\(result.problems)")
        #expect(result.problems.contains { $0.contains("record 25 differs from its journal checkpoint") }, "\(result.problems)")
    }

    @Test("a record deleted from the middle or from the start is named")
    func deletedRecord() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        let export = try Self.export(written, since: 10, until: 30)
        let middle = try Self.tampered(export.bytes) { root in
            var records = root["records"]!.arrayValue!
            records.remove(at: 8)  // seq 18
            root["records"] = .array(records)
        }
        let result = AuditBundle.verify(middle)
        #expect(!result.ok && result.firstBadSeq == 18, "\(result.problems)")
        #expect(result.problems.first?.contains("record 18 is missing") == true, "\(result.problems)")

        // The first record gone and the header made to agree: the anchor no longer fits.
        let first = try Self.tampered(export.bytes) { root in
            var records = root["records"]!.arrayValue!
            records.removeFirst()
            root["records"] = .array(records)
            root["range"] = ["since": root["range"]!["since"]!, "until": root["range"]!["until"]!, "first_seq": 11, "last_seq": 29, "records": 19]
        }
        let firstResult = AuditBundle.verify(first)
        #expect(!firstResult.ok && firstResult.firstBadSeq == 10, "\(firstResult.problems)")
    }

    @Test("a record appended after the last one is not vouched for, even correctly chained and with the header updated")
    func appendedRecord() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        let export = try Self.export(written, since: 10, until: 30)
        let forged = try Self.tampered(export.bytes) { root in
            var records = Self.records(root)
            var extra = records[records.count - 2]  // a decision, seq 29 → 30
            extra["seq"] = 30
            extra["prev"] = records.last!["hash"]!
            extra["request_id"] = "forged"
            records.append(Self.resealed(extra))
            root["records"] = .array(records.map { .object($0) })
            root["range"] = ["since": root["range"]!["since"]!, "until": root["range"]!["until"]!, "first_seq": 10, "last_seq": 30, "records": 21]
        }
        let result = AuditBundle.verify(forged)
        #expect(!result.ok && result.firstBadSeq == 30, "\(result.problems)")
        #expect(result.problems.contains { $0.contains("record 30 is not vouched for") }, "\(result.problems)")

        // Appended without touching the header: the header disagrees as well.
        let naive = try Self.tampered(export.bytes) { root in
            var records = Self.records(root)
            var extra = records.last!
            extra["seq"] = 30
            extra["prev"] = records.last!["hash"]!
            records.append(Self.resealed(extra))
            root["records"] = .array(records.map { .object($0) })
        }
        let naiveResult = AuditBundle.verify(naive)
        #expect(!naiveResult.ok && naiveResult.firstBadSeq == 30, "\(naiveResult.problems)")
        #expect(naiveResult.problems.contains { $0.contains("records were added or removed") }, "\(naiveResult.problems)")
    }

    @Test("an altered checkpoint is named")
    func alteredCheckpoint() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        let export = try Self.export(written, since: 10, until: nil)
        let bad = try Self.tampered(export.bytes) { root in
            var journal = root["journal"]!.objectValue!
            var checkpoints = journal["checkpoints"]!.arrayValue!
            #expect(checkpoints.compactMap { $0["seq"]?.intValue } == [25, 50, 60])
            var checkpoint = checkpoints[1].objectValue!
            checkpoint["hash"] = .string(written.receipts[48].hash)  // record 49's hash under seq 50
            checkpoints[1] = .object(checkpoint)
            journal["checkpoints"] = .array(checkpoints)
            root["journal"] = .object(journal)
        }
        let result = AuditBundle.verify(bad)
        #expect(!result.ok && result.firstBadSeq == 50, "\(result.problems)")
        #expect(result.problems == ["record 50 differs from its journal checkpoint: the record was rewritten or the checkpoint altered"], "\(result.problems)")

        // A checkpoint for a record the bundle does not hold is no evidence for it.
        let outside = try Self.tampered(export.bytes) { root in
            var journal = root["journal"]!.objectValue!
            journal["checkpoints"] = .array(journal["checkpoints"]!.arrayValue! + [["seq": 75, "hash": .string(written.receipts[0].hash)]])
            root["journal"] = .object(journal)
        }
        #expect(AuditBundle.verify(outside).problems.contains { $0.contains("journal checkpoint 75 lies outside") })
    }

    @Test("without journal evidence a bundle verifies only when asked for the chain alone")
    func noJournal() async throws {
        let written = try await Self.writeLog()
        defer { written.dir.remove() }
        let export = try Self.export(written, since: 10, until: 30, journal: AuditBundleJournalSource.none)
        #expect(try Self.parse(export.bytes)["journal"] == .null)
        let strict = AuditBundle.verify(export.bytes)
        #expect(!strict.ok && strict.problems.first?.contains("no journal evidence") == true, "\(strict.problems)")
        let chainOnly = AuditBundle.verify(export.bytes, requireJournal: false)
        #expect(chainOnly.ok, "\(chainOnly.problems)")
        #expect(chainOnly.notes.contains { $0.contains("nothing outside the bundle vouches") })
        // The chain is still checked.
        let bad = try Self.tampered(export.bytes) { root in
            var records = root["records"]!.arrayValue!
            records.remove(at: 3)
            root["records"] = .array(records)
        }
        let badResult = AuditBundle.verify(bad, requireJournal: false)
        #expect(badResult.firstBadSeq == 13 && !badResult.journal)
        #expect(!badResult.notes.contains { $0.contains("the chain is consistent") }, "\(badResult.notes)")
    }

    @Test("a file that is not a bundle fails cleanly")
    func notABundle() throws {
        #expect(!AuditBundle.verify(Array("not json".utf8)).ok)
        #expect(AuditBundle.verify(Array("{\"format\":\"deskgate-audit-bundle/2\",\"records\":[]}".utf8)).problems.first?.contains("unknown bundle format") == true)
        #expect(AuditBundle.verify(Array("{\"format\":\"deskgate-audit-bundle/1\",\"records\":[]}".utf8)).problems == ["the bundle holds no records"])
    }
}
