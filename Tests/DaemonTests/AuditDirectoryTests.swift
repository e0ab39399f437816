#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import DeskgateAPI
import JSONRPC
import TestSupport
import Testing

/// The audit directory under a real daemon: retention from the policy's `[audit]` table, and a
/// directory removed while the daemon runs. No desktop needed (`grants.list` and `audit.query`
/// are gated as class `admin`).
@Suite("Audit directory behind the daemon", .serialized)
struct AuditDirectoryTests {
    static let allowAdmin = """
        default = "deny"
        [[rule]]
        id = "admin"
        effect = "allow"
        actions = ["admin"]
        """

    static let firstSegment = "audit-00000000000000000001.jsonl"

    @Test("admin retention of 365 days keeps a 40-day-old record (a user file of 7 days cannot shorten it); a reload to 30 days prunes it")
    func adminRetentionKeepsOldRecords() async throws {
        let dir = TempDirectory("retention")
        defer { dir.remove() }
        let state = dir.file("state")
        try OldAuditLog.write(directory: state + "/audit", count: 5, daysAgo: 40)
        let oldSegment = state + "/audit/" + Self.firstSegment
        let user = Self.allowAdmin + "\n\n[audit]\nretention_days = 7\n"
        let daemon = try DaemonProcess(arguments: ["--state-dir", state], userPolicy: user,
                                       adminPolicy: "[audit]\nretention_days = 365\n")
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        // Gated requests append records: the 40-day-old segment is closed (segments rotate by
        // age) and retention runs, as it does after every rotation.
        for _ in 0..<3 { _ = try await client.call("grants.list") }
        let info = try await client.call("daemon.info")
        #expect(info["broker"]?["audit"]?["retention_days"] == 365, "\(info)")
        // What the audit log itself has in force, not only what the broker parsed.
        #expect(info["audit"]?["retention"]?["days"] == 365, "\(info)")
        #expect(FileManager.default.fileExists(atPath: oldSegment), "the 40-day-old segment was pruned: \(daemon.log)")
        let first = try await client.call("audit.query", ["since_seq": 1, "limit": 1])["records"]?.arrayValue?.first
        #expect(first?["seq"] == 1 && first?["kind"] == "grant_revoked", "\(String(describing: first))")
        #expect(!OldAuditLog.records(state + "/audit").contains { $0["kind"] == "pruned" })
        #expect(try await client.call("audit.verify")["ok"] == true)

        // The admin shortens retention to 30 days: the reload (SIGHUP) applies it to the open log.
        try "[audit]\nretention_days = 30\n".write(toFile: daemon.systemPolicyDirectory + "/00-admin.toml", atomically: true, encoding: .utf8)
        kill(daemon.pid, SIGHUP)
        var pruned = false
        for _ in 0..<200 where !pruned {
            pruned = !FileManager.default.fileExists(atPath: oldSegment)
            if !pruned { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(pruned, "a reload to 30 days did not prune the 40-day-old segment: \(daemon.log)")
        let prunedRecord = OldAuditLog.records(state + "/audit").last { $0["kind"] == "pruned" }
        #expect(prunedRecord?["details"]?["through_seq"] == 5)
        #expect(prunedRecord?["details"]?["retention_days"] == 30)
        #expect(try await client.call("daemon.info")["audit"]?["retention"]?["days"] == 30)
        #expect(try await client.call("audit.verify")["ok"] == true)
    }

    @Test("a broken admin policy holds retention: nothing is pruned until it loads again")
    func brokenAdminPolicyHoldsRetention() async throws {
        let dir = TempDirectory("retention-held")
        defer { dir.remove() }
        let state = dir.file("state")
        try OldAuditLog.write(directory: state + "/audit", count: 5, daysAgo: 40)
        let daemon = try DaemonProcess(arguments: ["--state-dir", state], userPolicy: Self.allowAdmin,
                                       adminPolicy: "[audit]\nretention_days = 365\nbogus = 1\n")
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        // The broken admin layer denies everything, so nothing gated runs; daemon.info still answers.
        let info = try await client.call("daemon.info")
        #expect(info["audit"]?["retention"]?["held"]?.stringValue?.contains("admin") == true, "\(info)")
        // Records are still written (denials are records): the first rotates the old segment out,
        // and once the second is durable any pruning after that rotation has run (one writer queue).
        for _ in 0..<2 {
            do {
                _ = try await client.call("grants.list")
                Issue.record("a broken admin policy allowed a request")
            } catch let error as RPCError {
                #expect(error.code == .denied)
            }
        }
        #expect(OldAuditLog.records(state + "/audit").contains { $0["kind"] == "decision" })
        #expect(FileManager.default.fileExists(atPath: state + "/audit/" + Self.firstSegment), "pruned with a broken admin policy: \(daemon.log)")
    }

    enum Removal: String, CaseIterable, Sendable {
        case removeTree = "rm -rf"
        case renameAside = "mv"
    }

    @Test("an audit directory removed or moved under a running daemon stops gated requests (-32007) until restart; ping and revoking keep working",
          arguments: Removal.allCases)
    func removedDirectoryFailsClosed(_ removal: Removal) async throws {
        let dir = TempDirectory("audit-unlinked")
        defer { dir.remove() }
        let state = dir.file("state")
        let audit = state + "/audit"
        let daemon = try DaemonProcess(arguments: ["--state-dir", state], userPolicy: Self.allowAdmin)
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        #expect(try await client.call("grants.list")["grants"] != nil)

        switch removal {
        case .removeTree: try FileManager.default.removeItem(atPath: audit)
        case .renameAside: #expect(rename(audit, state + "/audit.moved") == 0)
        }
        for method in ["grants.list", "audit.query", "grants.list"] {
            do {
                _ = try await client.call(method, method == "audit.query" ? ["limit": 1] : nil)
                Issue.record("\(method) was served with the audit directory gone (\(removal.rawValue))")
            } catch let error as RPCError {
                #expect(error.code == .auditUnavailable, "\(method): \(error)")
            }
        }
        #expect(try await client.call("daemon.ping") == "pong")
        #expect(try await client.call("grants.revoke_all")["revoked"] == 0)
        let info = try await client.call("daemon.info")
        #expect(info["audit"]?["writable"] == false, "\(info)")
        #expect(info["audit"]?["detached"] == true, "\(info)")
        #expect(daemon.log.contains("audit directory"), "the daemon log does not say why: \(daemon.log)")

        // A new directory at the path does not bring the log back: it stays failed closed.
        try FileManager.default.createDirectory(atPath: audit, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        do {
            _ = try await client.call("grants.list")
            Issue.record("served again after the directory was recreated under the running daemon")
        } catch let error as RPCError {
            #expect(error.code == .auditUnavailable)
        }
        client.closeNow()
        #expect(daemon.stop() == 0)

        // After a restart the daemon opens the log at the path again and serves.
        let restarted = try DaemonProcess(arguments: ["--state-dir", state], userPolicy: Self.allowAdmin)
        defer { restarted.stop() }
        let again = try await restarted.client()
        defer { again.closeNow() }
        #expect(try await again.call("grants.list")["grants"] != nil)
        #expect(try await again.call("daemon.info")["audit"]?["writable"] == true)
    }
}

/// A valid audit chain whose records are `daysAgo` days old, written without the Audit module
/// (canonical JSON from JSONRPC, SHA-256 from coreutils), as a daemon would have left it.
enum OldAuditLog {
    static func write(directory: String, count: Int, daysAgo: Int) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var prev = String(repeating: "0", count: 64)
        var text = ""
        let base = Int64(Date().timeIntervalSince1970 - Double(daysAgo) * 86400) * 1_000_000
        for seq in 1...count {
            var record: JSONObject = [
                "kind": "grant_revoked", "seq": .int(Int64(seq)), "time": .string(RFC3339.format(micros: base + Int64(seq) * 1_000_000)),
                "prev": .string(prev),
            ]
            let hash = try sha256(JSONWriter.bytes(.object(record), sortedKeys: true))
            record["hash"] = .string(hash)
            text += JSONWriter.string(.object(record), sortedKeys: true) + "\n"
            prev = hash
        }
        try text.write(toFile: directory + "/audit-00000000000000000001.jsonl", atomically: false, encoding: .utf8)
    }

    /// Every record in the segments of `directory`, in order.
    static func records(_ directory: String) -> [JSONValue] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        return files.flatMap { file in
            ((try? String(contentsOfFile: directory + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONParser.parse(String($0)) }
        }
    }

    static func sha256(_ bytes: [UInt8]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let hex = String(decoding: data.prefix(64), as: UTF8.self)
        guard hex.count == 64 else { throw TestFailure("sha256sum failed") }
        return hex
    }
}
