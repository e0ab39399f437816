import Audit
import CSystemd
import Crypto
import Foundation
import Glibc
import JSONRPC
import Testing

/// Reads journal entries directly (independently of the Audit module's reader).
enum TestJournal {
    static var requested: Bool { ProcessInfo.processInfo.environment["DESKGATE_JOURNAL_TEST"] == "1" }

    /// Every field of every entry matching all `matches` (`FIELD=value`), in journal order.
    static func entries(_ matches: [String]) -> [[String: [UInt8]]] {
        var journal: OpaquePointer?
        guard sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY)) >= 0, let journal else { return [] }
        defer { sd_journal_close(journal) }
        for match in matches { _ = match.withCString { sd_journal_add_match(journal, $0, 0) } }
        var out: [[String: [UInt8]]] = []
        _ = sd_journal_seek_head(journal)
        while sd_journal_next(journal) > 0 {
            var fields: [String: [UInt8]] = [:]
            var data: UnsafeRawPointer?
            var length = 0
            sd_journal_restart_data(journal)
            while sd_journal_enumerate_data(journal, &data, &length) > 0, let data {
                let bytes = [UInt8](UnsafeRawBufferPointer(start: data, count: length))
                if let eq = bytes.firstIndex(of: UInt8(ascii: "=")) {
                    fields[String(decoding: bytes[..<eq], as: UTF8.self)] = Array(bytes[(eq + 1)...])
                }
            }
            out.append(fields)
        }
        return out
    }

    static func string(_ entry: [String: [UInt8]], _ field: String) -> String? {
        entry[field].map { String(decoding: $0, as: UTF8.self) }
    }

    /// The entries matching `matches` once journald has stored at least `count` of them (it
    /// stores what it is sent asynchronously), or what it has after 5 s.
    static func waitForEntries(_ matches: [String], atLeast count: Int) async throws -> [[String: [UInt8]]] {
        for _ in 0..<100 {
            let found = entries(matches)
            if found.count >= count { return found }
            try await Task.sleep(for: .milliseconds(50))
        }
        return entries(matches)
    }

    /// Waits until journald has stored at least `count` checkpoints for `logID`.
    static func waitForCheckpoints(_ logID: String, atLeast count: Int) async throws -> [JournalCheckpoint] {
        for _ in 0..<100 {
            let found = try AuditJournalReader.checkpoints(logID: logID)
            if found.count >= count { return found }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try AuditJournalReader.checkpoints(logID: logID)
    }
}

/// Needs a journald: run through scripts/journald-test.sh (sets DESKGATE_JOURNAL_TEST=1 and runs a
/// private systemd-journald). Without that variable these tests are not run.
@Suite("Audit journal mirror", .enabled(if: TestJournal.requested, "run via scripts/journald-test.sh"), .serialized)
struct JournalTests {
    func openJournaled(_ dir: String) throws -> AuditLog {
        try AuditLog.open(config: AuditConfig(directory: dir, segmentMaxBytes: 1 << 20, journal: .auto), logger: testLogger())
    }

    @Test("records are mirrored with structured fields; checkpoints every 100 records and at close")
    func mirrorAndCheckpoints() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal")
        defer { tmp.remove() }
        let log = try openJournaled(tmp.auditDir)
        #expect(log.health.journal)
        var receipts: [AuditReceipt] = []
        for n in 1...125 { receipts.append(try await log.append(decision(n, effect: n % 2 == 0 ? "deny" : "allow"))) }
        await log.close()

        let checkpoints = try await TestJournal.waitForCheckpoints(log.logID, atLeast: 2)
        #expect(checkpoints.map(\.seq) == [100, 125])
        #expect(checkpoints.map(\.reason) == ["periodic", "close"])
        #expect(checkpoints[0].hash == receipts[99].hash)
        #expect(checkpoints[1].hash == receipts[124].hash)
        #expect(checkpoints[0].exe != nil)

        let mirrored = TestJournal.entries(["DESKGATE_LOG_ID=" + log.logID, "DESKGATE_SEQ=42"])
            .filter { $0["DESKGATE_CHECKPOINT"] == nil }
        let entry = try #require(mirrored.first)
        #expect(TestJournal.string(entry, "DESKGATE_HASH") == receipts[41].hash)
        #expect(TestJournal.string(entry, "DESKGATE_METHOD") == "element.activate")
        #expect(TestJournal.string(entry, "DESKGATE_DECISION") == "deny")
        #expect(TestJournal.string(entry, "DESKGATE_CLIENT_EXE") == "/usr/bin/agent")
        #expect(TestJournal.string(entry, "MESSAGE")?.contains("seq=42") == true)
        let recordLine = try #require(entry["DESKGATE_RECORD"])
        #expect(try JSONParser.parse(recordLine)["hash"]?.stringValue == receipts[41].hash)

        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(verification.ok)
        #expect(verification.journal?.checkpoints == 2)
        // journald's trusted _EXE: this test binary wrote them.
        #expect(verification.journal?.writers.count == 1)
        #expect(verification.journal?.writers.first?.hasSuffix(".xctest") == true)
    }

    /// Writes 250 records (checkpoints at 100, 200, 250) and returns the log id.
    func checkpointedLog(_ dir: String) async throws -> String {
        let log = try openJournaled(dir)
        // Outcome records: no decisions left open, so a restart adds no records of its own.
        for n in 1...250 { _ = try await log.append(outcome(n)) }
        await log.close()
        _ = try await TestJournal.waitForCheckpoints(log.logID, atLeast: 3)
        #expect(try AuditVerifier.verify(directory: dir, journal: true).ok)
        return log.logID
    }

    @Test("a truncated local log verifies locally but not against the journal")
    func truncationCaught() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal")
        defer { tmp.remove() }
        _ = try await checkpointedLog(tmp.auditDir)
        let path = try #require(segmentFiles(tmp.auditDir).last)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        try (lines.prefix(150).joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)

        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(!verification.ok)
        #expect(verification.journal?.problems.contains { $0.contains("checkpoint seq 200") && $0.contains("truncated") } == true)

        // Writing on after the cut: the new start's checkpoint comes after 250: out of order.
        let log = try openJournaled(tmp.auditDir)
        for n in 1...5 { _ = try await log.append(outcome(n)) }
        await log.close()
        _ = try await TestJournal.waitForCheckpoints(log.logID, atLeast: 5)
        let again = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(!again.ok)
        #expect(again.journal?.problems.contains { $0.contains("out of order") } == true)
    }

    @Test("a rewritten local log with a valid chain is caught by the checkpoints")
    func rewriteCaught() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal")
        defer { tmp.remove() }
        _ = try await checkpointedLog(tmp.auditDir)
        // Rewrite from record 180 on, re-chaining every hash, as a same-uid attacker could.
        let path = try #require(segmentFiles(tmp.auditDir).last)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        var prev = try #require(try JSONParser.parse(Array(lines[178].utf8))["hash"]?.stringValue)
        for i in 179..<lines.count {
            var record = try #require(try JSONParser.parse(Array(lines[i].utf8)).objectValue)
            if i == 179 { record["method"] = "element.focus" }
            record["prev"] = .string(prev)
            record["hash"] = nil
            let hash = SHA256.hash(data: JSONWriter.bytes(.object(record), sortedKeys: true)).map { String(format: "%02x", $0) }
                .joined()
            record["hash"] = .string(hash)
            lines[i] = JSONWriter.string(.object(record), sortedKeys: true)
            prev = hash
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)

        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(!verification.ok)
        let problems = verification.journal?.problems ?? []
        #expect(problems.contains { $0.contains("record 200") && $0.contains("rewritten") })
        #expect(problems.contains { $0.contains("record 250") && $0.contains("rewritten") })
        #expect(!problems.contains { $0.contains("record 100 ") })
    }

    @Test("the canary appears nowhere in the journal")
    func canaryNotInJournal() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal")
        defer { tmp.remove() }
        let canary = "canary-journal-\(UInt64.random(in: 0...UInt64.max))"
        let log = try openJournaled(tmp.auditDir)
        var typed = decision(1)
        typed.target = ["app": "gedit", "role": "text", "field": "Body", "value": log.valueDigest(canary)]
        _ = try await log.append(typed)
        var password = decision(2)
        password.target = ["app": "login", "role": "password text", "value": AuditLog.lengthOnly(canary)]
        _ = try await log.append(password)
        await log.close()
        _ = try await TestJournal.waitForCheckpoints(log.logID, atLeast: 1)

        let mine = TestJournal.entries(["DESKGATE_LOG_ID=" + log.logID])
        #expect(mine.count >= 3)
        for entry in mine {
            for (field, value) in entry { #expect(!contains(value, Array(canary.utf8)), "canary in \(field)") }
        }
        // And in the journal files themselves.
        for (path, bytes) in allFileBytes(under: "/run/log/journal") {
            #expect(!contains(bytes, Array(canary.utf8)), "canary in \(path)")
        }
    }
}

/// The journal as the second witness of the local log: every mirrored record, the log's tail at
/// start-up, and the logs a directory held before (fresh, reset, deleted).
@Suite("Audit journal: cut tails, replaced logs and resets", .enabled(if: TestJournal.requested, "run via scripts/journald-test.sh"), .serialized)
struct JournalWitnessTests {
    func openJournaled(_ dir: String) throws -> AuditLog {
        try AuditLog.open(config: AuditConfig(directory: dir, segmentMaxBytes: 1 << 20, journal: .auto), logger: testLogger())
    }

    /// Waits until journald holds record `seq` of `logID`.
    func waitForRecord(_ logID: String, seq: Int64) async throws {
        for _ in 0..<200 {
            if !TestJournal.entries(["DESKGATE_LOG_ID=" + logID, "DESKGATE_SEQ=\(seq)", "MESSAGE_ID=8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b51"]).isEmpty {
                return
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("journald never got record \(seq) of \(logID)")
    }

    /// 130 records with no clean close (the last checkpoint is at 100), like a daemon killed with
    /// SIGKILL; returns the log id once journald holds every record.
    func crashedLog(_ dir: String) async throws -> String {
        let log = try openJournaled(dir)
        for n in 1...130 { _ = try await log.append(outcome(n)) }
        let id = log.logID
        try await waitForRecord(id, seq: 130)
        return id  // not closed: no "close" checkpoint
    }

    func cutTail(_ dir: String, records: Int) throws {
        let path = try #require(segmentFiles(dir).last)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        try (lines.dropLast(records).joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test("a tail cut after the last checkpoint is found record by record; a restart records one integrity break")
    func tailCutAfterLastCheckpoint() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal-cut")
        defer { tmp.remove() }
        let id = try await crashedLog(tmp.auditDir)
        try cutTail(tmp.auditDir, records: 20)

        #expect(try AuditVerifier.verify(directory: tmp.auditDir, journal: false).ok)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(!verification.ok)
        #expect(verification.journal?.records == 130)
        #expect(verification.journal?.problems.contains { $0.contains("records 111–130") && $0.contains("cut") } == true,
                "\(String(describing: verification.journal?.problems))")
        #expect(verification.journal?.history == "fresh")

        // The next start notices (the journal's last record is 130, the file ends at 110).
        let log = try openJournaled(tmp.auditDir)
        #expect(log.logID == id)
        #expect(log.health.firstBadSeq == 111)
        let receipt = try await log.append(outcome(200))
        #expect(receipt.seq == 112)
        #expect(await log.verify().ok == false)
        await log.close()
        let breaks = records(tmp.auditDir).filter { $0["kind"] == "integrity_break" }
        #expect(breaks.count == 1)
        #expect(breaks.first?["seq"] == 111)
        #expect(breaks.first?["details"]?["cause"] == "tail_cut")
        #expect(breaks.first?["details"]?["journal_last_seq"] == 130)
        #expect(breaks.first?["details"]?["local_last_seq"] == 110)

        // Locally the log now says it is broken; a second start does not record the cut again.
        let local = try AuditVerifier.verify(directory: tmp.auditDir, journal: false)
        #expect(!local.ok && local.firstBadSeq == 111)
        try await waitForRecord(id, seq: 112)
        let again = try openJournaled(tmp.auditDir)
        await again.close()
        #expect(records(tmp.auditDir).filter { $0["kind"] == "integrity_break" }.count == 1)
        let final = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(final.journal?.problems.contains { $0.contains("records 111–112") && $0.contains("differ") } == true,
                "\(String(describing: final.journal?.problems))")
    }

    @Test("an intact log after a crash verifies against every mirrored record")
    func intactAfterCrash() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal-intact")
        defer { tmp.remove() }
        _ = try await crashedLog(tmp.auditDir)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(verification.ok, "\(String(describing: verification.journal?.problems))")
        #expect(verification.journal?.records == 130)
        let log = try openJournaled(tmp.auditDir)
        #expect(log.health.firstBadSeq == nil)
        await log.close()
        #expect(!records(tmp.auditDir).contains { $0["kind"] == "integrity_break" })
    }

    @Test("a deleted directory: the new log's first record names the old one, and verify --journal reports a deletion")
    func deletedDirectory() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal-deleted")
        defer { tmp.remove() }
        let first = try openJournaled(tmp.auditDir)
        for n in 1...5 { _ = try await first.append(outcome(n)) }
        await first.close()
        try await waitForRecord(first.logID, seq: 5)
        try FileManager.default.removeItem(atPath: tmp.auditDir)

        let second = try openJournaled(tmp.auditDir)
        #expect(second.logID != first.logID)
        #expect(second.health.firstBadSeq == 1)
        await second.close()
        let opening = try #require(records(tmp.auditDir).first)
        #expect(opening["kind"] == "integrity_break")
        #expect(opening["details"]?["cause"] == "log_replaced")
        #expect(opening["details"]?["previous_log_id"]?.stringValue == first.logID)
        #expect(opening["details"]?["previous_last_seq"] == 5)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(!verification.ok)
        #expect(verification.journal?.history == "deleted")
        #expect(verification.journal?.previousLog?.logID == first.logID)
    }

    @Test("reset: refused while the log is open; moves it aside, records it in the journal; the next log names it and verifies")
    func resetToldApart() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal-reset")
        defer { tmp.remove() }
        let fresh = try openJournaled(tmp.auditDir)
        var last: AuditReceipt?
        for n in 1...5 { last = try await fresh.append(outcome(n)) }
        #expect(throws: AuditError.self) { try AuditLog.reset(directory: tmp.auditDir) }
        #expect(FileManager.default.fileExists(atPath: tmp.auditDir + "/hmac.key"))
        await fresh.close()
        // journald stores entries asynchronously: verify once it holds the records and the close.
        try await waitForRecord(fresh.logID, seq: 5)
        _ = try await TestJournal.waitForCheckpoints(fresh.logID, atLeast: 1)
        let freshCheck = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(freshCheck.ok && freshCheck.journal?.history == "fresh")

        let reset = try AuditLog.reset(directory: tmp.auditDir)
        #expect(reset.logID == fresh.logID)
        #expect(reset.lastSeq == 5 && reset.lastHash == last?.hash)
        #expect(reset.journaled)
        #expect(!FileManager.default.fileExists(atPath: tmp.auditDir))
        #expect(records(reset.movedTo).count == 5)
        let entries = try await TestJournal.waitForEntries(["DESKGATE_RESET=1", "DESKGATE_LOG_ID=" + fresh.logID], atLeast: 1)
        #expect(entries.count == 1)
        #expect(TestJournal.string(entries[0], "DESKGATE_SEQ") == "5")
        // No log yet: the journal says why.
        let between = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(between.ok && between.journal?.history == "reset")

        let next = try openJournaled(tmp.auditDir)
        #expect(next.health.firstBadSeq == nil)
        _ = try await next.append(outcome(6))
        await next.close()
        try await waitForRecord(next.logID, seq: 2)
        _ = try await TestJournal.waitForCheckpoints(next.logID, atLeast: 1)
        let opening = try #require(records(tmp.auditDir).first)
        #expect(opening["kind"] == "log_started")
        #expect(opening["details"]?["previous_log_id"]?.stringValue == fresh.logID)
        #expect(opening["details"]?["previous_reset"] == true)
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: true)
        #expect(verification.ok, "\(String(describing: verification.journal?.problems))")
        #expect(verification.journal?.history == "reset")
        #expect(verification.journal?.previousLog?.logID == fresh.logID)
        // Who wrote the reset entry, as journald recorded it: this test binary.
        #expect(verification.journal?.previousLog?.resetBy?.hasSuffix(".xctest") == true)
    }
}

/// Bundles whose journal evidence comes from a real journald (`deskgate audit export` reads it
/// the way `verify --journal` does).
@Suite("Audit bundles with journal evidence", .enabled(if: TestJournal.requested, "run via scripts/journald-test.sh"), .serialized)
struct JournalBundleTests {
    @Test("export reads the checkpoints and record copies covering the range; verify checks them; a changed checkpoint is named")
    func exportWithJournal() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal-bundle")
        defer { tmp.remove() }
        let log = try AuditLog.open(config: AuditConfig(directory: tmp.auditDir, segmentMaxBytes: 1 << 20, journal: .auto), logger: testLogger())
        var receipts: [AuditReceipt] = []
        for n in 1...250 { receipts.append(try await log.append(outcome(n))) }
        await log.close()
        _ = try await TestJournal.waitForCheckpoints(log.logID, atLeast: 3)

        // Records 150…250 (times are the wall clock: select by the stored times).
        let since = try #require(RFC3339.parse(receipts[149].time))
        let export = try AuditBundle.export(directory: tmp.auditDir, sinceMicros: since, untilMicros: nil, journal: .system)
        #expect(export.firstSeq <= 150 && export.lastSeq == 250, "\(export.firstSeq)…\(export.lastSeq)")
        #expect(export.warnings.isEmpty, "\(export.warnings)")
        let root = try #require(try JSONParser.parse(export.bytes).objectValue)
        let checkpoints = (root["journal"]?["checkpoints"]?.arrayValue ?? []).compactMap { $0["seq"]?.intValue }
        #expect(checkpoints == [200, 250], "only the checkpoints inside the range")
        #expect(root["journal"]?["records"]?.arrayValue?.count == Int(250 - export.firstSeq + 2), "a copy of every record and the one before")
        #expect(root["journal"]?["writers"]?.arrayValue?.first?.stringValue?.hasSuffix(".xctest") == true)

        let result = AuditBundle.verify(export.bytes)
        #expect(result.ok, "\(result.problems)")
        #expect(result.checkpointsMatched == 2 && result.vouchedThrough == 250)
        #expect(result.anchorCheckpoint?.hash == receipts[249].hash)

        var tampered = root
        var journal = try #require(tampered["journal"]?.objectValue)
        var list = try #require(journal["checkpoints"]?.arrayValue)
        var first = try #require(list[0].objectValue)
        first["hash"] = .string(receipts[198].hash)
        list[0] = .object(first)
        journal["checkpoints"] = .array(list)
        tampered["journal"] = .object(journal)
        let bad = AuditBundle.verify(JSONWriter.bytes(.object(tampered), sortedKeys: true))
        #expect(!bad.ok && bad.firstBadSeq == 200, "\(bad.problems)")
    }

    @Test("records not yet vouched for by a checkpoint are covered by their journal copies (a daemon killed before its next checkpoint)")
    func recordCopiesAfterLastCheckpoint() async throws {
        try #require(FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"), "no journald")
        let tmp = TempDir("journal-bundle-open")
        defer { tmp.remove() }
        let log = try AuditLog.open(config: AuditConfig(directory: tmp.auditDir, segmentMaxBytes: 1 << 20, journal: .auto), logger: testLogger())
        var receipts: [AuditReceipt] = []
        for n in 1...130 { receipts.append(try await log.append(outcome(n))) }
        // Not closed: the last checkpoint is at 100. Export waits for the mirror to catch up.
        let since = try #require(RFC3339.parse(receipts[109].time))
        let export = try AuditBundle.export(directory: tmp.auditDir, sinceMicros: since, untilMicros: nil, journal: .system)
        #expect(export.checkpoints == 0 && export.lastSeq == 130)
        let result = AuditBundle.verify(export.bytes)
        #expect(result.ok && result.vouchedThrough == 130, "\(result.problems)")
        await log.close()
    }
}
