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
