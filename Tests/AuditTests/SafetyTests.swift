import Audit
import Crypto
import Foundation
import Glibc
import JSONRPC
import Testing

@Suite("Audit safety")
struct SafetyTests {
    @Test("hostile names (newlines, ANSI escapes, bidi overrides, 1 MB) stay one escaped, bounded line")
    func hostileStrings() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        let huge = String(repeating: "A", count: 1 << 20) + "\u{202E}tail"
        let hostile = [
            "Save\n{\"seq\":1,\"kind\":\"decision\"}\r\n", "\u{1B}[31mred\u{1B}[0m\u{07}", "invoice\u{202E}fdp.exe",
            "a\u{2066}b\u{2069}c\u{200F}\u{2028}d", "\u{85}\u{9B}31m", huge,
        ]
        for (i, name) in hostile.enumerated() {
            var entry = decision(i)
            entry.target = ["app": .string(name), "role": "push button", "name": .string(name)]
            entry.client = ["exe": "/usr/bin/agent", "label": .string(name)]
            entry.details = [name: .string(name)]
            _ = try await log.append(entry)
        }
        #expect(await log.verify().ok)
        await log.close()

        let path = try #require(segmentFiles(tmp.auditDir).first)
        let bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        #expect(bytes.filter { $0 == 0x0A }.count == hostile.count)
        for raw in ["\u{1B}", "\u{07}", "\u{202E}", "\u{2066}", "\u{2069}", "\u{200F}", "\u{2028}", "\u{85}", "\u{9B}", "\r"] {
            #expect(!contains(bytes, Array(raw.utf8)), "raw \(raw.unicodeScalars.first!.value) in the file")
        }
        let lines = allLines(tmp.auditDir)
        #expect(lines.allSatisfy { $0.utf8.count < 16 * 1024 })
        let all = records(tmp.auditDir)
        #expect(all[1]["target"]?["name"]?.stringValue == "\\u{1b}[31mred\\u{1b}[0m\\u{7}")
        #expect(all[2]["target"]?["name"]?.stringValue == "invoice\\u{202e}fdp.exe")
        // The 1 MB name is cut, with the length and SHA-256 of the whole.
        let cut = try #require(all[5]["target"]?["name"]?.stringValue)
        let digest = SHA256.hash(data: Array(huge.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(cut.hasPrefix(String(repeating: "A", count: 1000)))
        #expect(cut.hasSuffix("[truncated: \(huge.utf8.count) bytes, sha256 \(digest)]"))
    }

    // What the daemon writes for a typed value ({len, hmac}, or {len} for a password field) is
    // tested on the real request path: DaemonTests' CanaryTests.

    @Test("the value key lives with the log: digests are checkable, survive reopening, and differ from another log's")
    func valueKey() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let secret = "secret-\(UInt64.random(in: 0...UInt64.max))"
        let log = try openLog(tmp.auditDir)
        let digest = log.valueDigest(secret)
        #expect(digest["len"]?.intValue == Int64(secret.count))
        #expect(log.digest(digest, matches: secret))
        #expect(!log.digest(digest, matches: secret + "x"))
        #expect(!log.digest(AuditLog.lengthOnly(secret), matches: secret), "a length alone confirms nothing")
        await log.close()
        // The key survives restarts: digests stay comparable.
        let reopened = try openLog(tmp.auditDir)
        #expect(reopened.valueDigest(secret) == digest)
        #expect(reopened.digest(digest, matches: secret))
        await reopened.close()
        let other = TempDir()
        defer { other.remove() }
        let otherLog = try openLog(other.auditDir)
        #expect(otherLog.valueDigest(secret) != digest)
        #expect(!otherLog.digest(digest, matches: secret))
        await otherLog.close()
    }

    @Test("a full disk fails appends with -32007, health says so, and writing resumes without a gap")
    func fullDisk() async throws {
        let tmp = TempDir("fulldisk")
        defer { tmp.remove() }
        let mountPoint = tmp.path + "/fs"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let mounted = mount("tmpfs", mountPoint, "tmpfs", 0, "size=256k,mode=0700")
        try #require(mounted == 0, "mounting a tmpfs needs root: \(String(cString: strerror(errno)))")
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        // Leave room to free later.
        let filler = mountPoint + "/filler"
        try #require(FileManager.default.createFile(atPath: filler, contents: Data(count: 64 * 1024)))

        let log = try openLog(mountPoint + "/audit", segmentMaxBytes: 32 * 1024)
        var lastGood: Int64 = 0
        var failure: (any Error)?
        for n in 1...2000 {
            var entry = decision(n)
            entry.details = ["pad": .string(String(repeating: "p", count: 900))]
            do { lastGood = try await log.append(entry).seq } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure as? AuditError)
        #expect({ if case .unavailable = error { true } else { false } }(), "\(error)")
        #expect(lastGood > 10)
        #expect(!log.health.writable)
        #expect(log.health.lastError?.contains("No space left") == true)
        #expect(log.health.json["writable"] == false)
        // Still failing while full.
        var big = decision(0)
        big.details = ["pad": .string(String(repeating: "p", count: 4000))]
        await #expect(throws: AuditError.self) { try await log.append(big) }

        try FileManager.default.removeItem(atPath: filler)
        let resumed = try await log.append(decision(9999))
        #expect(resumed.seq == lastGood + 1)
        #expect(log.health.writable)
        #expect(log.health.lastError == nil)
        let verification = await log.verify()
        #expect(verification.ok)
        #expect(verification.records == Int(lastGood + 1))
        await log.close()
        #expect(try AuditVerifier.verify(directory: mountPoint + "/audit", journal: false).ok)
    }

    @Test("RLIMIT_FSIZE: the write fails with -32007 instead of SIGXFSZ killing the process")
    func fileSizeLimit() async throws {
        let tmp = TempDir("fsize")
        defer { tmp.remove() }
        let result = try await blocking {
            try ChildProcess.run(
                "/bin/sh", ["-c", "ulimit -f 64; exec \"$0\" \"$1\" 2", CrashWriter.path, tmp.auditDir], readFor: 30)
        }
        #expect(result.signal == nil, "the writer was killed by signal \(result.signal ?? 0)")
        #expect(result.output.contains("ERR audit log unavailable"))
        #expect(result.output.contains("File too large"))
        let acked = result.output.split(separator: "\n").filter { $0.hasPrefix("ACK ") }.count
        #expect(acked > 10)
        // Everything acknowledged is there and verifies.
        let verification = try AuditVerifier.verify(directory: tmp.auditDir, journal: false)
        #expect(verification.ok)
        #expect(verification.records >= acked)
    }
}

@Suite("Audit directory removed under an open log")
struct DetachedTests {
    enum Removal: String, CaseIterable, Sendable {
        case directory = "rm -rf audit"
        case segment = "rm audit-*.jsonl"
        case rename = "mv audit elsewhere"
    }

    @Test("appends fail with -32007 once the directory or current segment is gone, and keep failing after it is recreated", arguments: Removal.allCases)
    func removalStopsAppends(_ removal: Removal) async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir)
        for n in 1...3 { _ = try await log.append(outcome(n)) }
        switch removal {
        case .directory: try FileManager.default.removeItem(atPath: tmp.auditDir)
        case .segment: for path in segmentFiles(tmp.auditDir) { try FileManager.default.removeItem(atPath: path) }
        case .rename: #expect(rename(tmp.auditDir, tmp.path + "/moved") == 0)
        }
        do {
            _ = try await log.append(outcome(4))
            Issue.record("an append succeeded after \(removal.rawValue)")
        } catch let error as AuditError {
            #expect({ if case .unavailable = error { true } else { false } }(), "\(error)")
        }
        #expect(log.health.detached)
        #expect(!log.health.writable)
        #expect(log.health.lastError?.contains("until the daemon restarts") == true, "\(String(describing: log.health.lastError))")
        // Put back a directory (or segment) at the path: the log stays stopped.
        try FileManager.default.createDirectory(atPath: tmp.auditDir, withIntermediateDirectories: true)
        await #expect(throws: AuditError.self) { _ = try await log.append(outcome(5)) }
        #expect(log.health.detached)
        await log.close()
        if removal == .rename {
            // Nothing after record 3 reached the moved files either.
            #expect(records(tmp.path + "/moved").map { $0["seq"]?.intValue ?? 0 } == [1, 2, 3])
        }
    }

    @Test("an intact directory is not mistaken for a removed one across rotation and pruning")
    func rotationIsNotRemoval() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        let log = try openLog(tmp.auditDir, segmentMaxBytes: 2048, maxBytes: 6000)
        for n in 1...100 { _ = try await log.append(decision(n)) }
        #expect(!log.health.detached)
        #expect(log.health.writable)
        #expect(await log.verify().ok)
        await log.close()
    }
}

@Suite("Audit reset")
struct ResetTests {
    @Test("reset is refused while a log is open, needs a log, moves the whole directory aside; the next log has a new id")
    func resetMovesAside() async throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        #expect(throws: AuditError.self) { try AuditLog.reset(directory: tmp.auditDir) }  // no log yet
        let log = try openLog(tmp.auditDir)
        var last: AuditReceipt?
        for n in 1...3 { last = try await log.append(outcome(n)) }
        do {
            _ = try AuditLog.reset(directory: tmp.auditDir)
            Issue.record("reset went ahead under an open log")
        } catch {
            #expect("\(error)".contains("in use"))
        }
        #expect(log.health.writable)
        await log.close()

        let reset = try AuditLog.reset(directory: tmp.auditDir)
        #expect(reset.logID == log.logID)
        #expect(reset.lastSeq == 3 && reset.lastHash == last?.hash)
        #expect(reset.movedTo.hasPrefix(tmp.path + "/audit.reset-"))
        #expect(reset.journaled == FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"))
        #expect(!FileManager.default.fileExists(atPath: tmp.auditDir))
        #expect(FileManager.default.fileExists(atPath: reset.movedTo + "/hmac.key"))
        #expect(fileMode(reset.movedTo) == 0o700)
        #expect(records(reset.movedTo).count == 3)

        let next = try openLog(tmp.auditDir)
        #expect(next.logID != log.logID)
        #expect(try await next.append(outcome(4)).seq == 1)
        await next.close()
        // A second reset in the same second gets a name of its own.
        let again = try AuditLog.reset(directory: tmp.auditDir)
        #expect(again.movedTo != reset.movedTo)
        #expect(records(again.movedTo).count == 1)
    }
}
