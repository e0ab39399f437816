#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

/// `deskgate audit export` and `deskgate audit verify --bundle` as a person runs them, on the log
/// of a real daemon (no journald here: `--no-journal` and `--chain-only`; the journal evidence is
/// tested by scripts/journald-test.sh and `JournalBundleTests`).
@Suite("deskgate audit export and verify --bundle", .serialized)
struct AuditExportCLITests {
    static let allowAdmin = """
        default = "deny"
        [[rule]]
        id = "admin"
        effect = "allow"
        actions = ["admin"]
        """

    @Test("export a real daemon's log, verify the bundle offline, and name the record changed in a copy")
    func exportVerifyTamper() async throws {
        let daemon = try DaemonProcess(userPolicy: Self.allowAdmin, adminPolicy: "[audit]\nretention_days = 90\n")
        defer { daemon.stop() }
        let client = try await daemon.client()
        for _ in 0..<5 { _ = try await client.call("grants.list") }
        client.closeNow()
        let dir = TempDirectory("deskgate-export")
        defer { dir.remove() }
        var env = CLI.isolatedEnvironment(dir)
        env["DESKGATE_SOCKET"] = daemon.socketPath  // the daemon's build comes from daemon.info
        let bundle = dir.file("incident.bundle")
        let common = ["--state-dir", daemon.stateDirectory, "--config-dir", daemon.configDirectory,
                      "--system-policy-dir", daemon.systemPolicyDirectory, "--no-journal"]

        let export = try CLI.run(["audit", "export", "--since", "2000-01-01T00:00:00Z", "--out", bundle] + common, environment: env)
        #expect(export.status == 0, "\(export.output)")
        #expect(export.stdout.contains("bundle sha256: "), "\(export.output)")
        #expect(export.stderr.contains("verifies only with --chain-only") || export.stderr.contains("carries no"), "\(export.output)")
        var st = stat()
        #expect(stat(bundle, &st) == 0 && st.st_mode & 0o777 == 0o600)

        let root = try JSONParser.parse(Array(try #require(FileManager.default.contents(atPath: bundle))))
        #expect(root["format"] == "deskgate-audit-bundle/1")
        let records = try #require(root["records"]?.arrayValue)
        let stored = daemon.auditRecords()
        #expect(records.count == stored.count && records.count >= 10, "\(records.count) of \(stored.count)")
        #expect(records.map { JSONWriter.string($0, sortedKeys: true) } == stored.map { JSONWriter.string($0, sortedKeys: true) })
        #expect(root["daemon"]?["source"] == "daemon.info" && root["daemon"]?["pid"]?.intValue == Int64(daemon.pid), "\(root["daemon"] ?? .null)")
        #expect(root["daemon"]?["build"]?["version"]?.stringValue?.isEmpty == false)
        // The policy files' SHA-256 now agree with what the daemon recorded when it loaded them.
        let files = root["policy_files"]?.arrayValue ?? []
        #expect(files.count == 2, "\(files)")
        for file in files {
            let path = try #require(file["path"]?.stringValue)
            let loaded = stored.last { $0["kind"] == "policy_load" && $0["details"]?["path"]?.stringValue == path }
            #expect(loaded?["details"]?["sha256"] != nil && file["sha256"] == loaded?["details"]?["sha256"], "\(path): \(file)")
        }

        // Offline: no daemon, no audit directory (a copy of the bundle elsewhere).
        daemon.stop()
        let strict = try CLI.run(["audit", "verify", "--bundle", bundle], environment: env)
        #expect(strict.status == 1 && strict.stdout.contains("no journal evidence"), "\(strict.output)")
        let ok = try CLI.run(["audit", "verify", "--bundle", bundle, "--chain-only"], environment: env)
        #expect(ok.status == 0 && ok.stdout.hasPrefix("ok: bundle verifies: records 1–\(records.count)"), "\(ok.output)")

        // A record's field changed in a copy of the bundle.
        var tampered = try #require(root.objectValue)
        var list = records
        var third = try #require(list[2].objectValue)
        third["method"] = "text.set"
        list[2] = .object(third)
        tampered["records"] = .array(list)
        let badPath = dir.file("tampered.bundle")
        try Data(JSONWriter.bytes(.object(tampered))).write(to: URL(fileURLWithPath: badPath))
        let bad = try CLI.run(["audit", "verify", "--bundle", badPath, "--chain-only"], environment: env)
        #expect(bad.status == 1, "\(bad.output)")
        #expect(bad.stdout.contains("FAILED") && bad.stdout.contains("first bad record: seq 3"), "\(bad.output)")
        let badJSON = try CLI.run(["audit", "verify", "--bundle", badPath, "--chain-only", "--json"], environment: env)
        let badResult = try JSONParser.parse(badJSON.stdout)
        #expect(badJSON.status == 1 && badResult["first_bad_seq"] == 3, "\(badJSON.output)")

        // --json: what was written, for scripts.
        let second = dir.file("second.bundle")
        let scripted = try CLI.run(["--json", "audit", "export", "--since", "2000-01-01T00:00:00Z", "--out", second] + common, environment: env)
        let summary = try JSONParser.parse(scripted.stdout)
        #expect(scripted.status == 0 && summary["file"]?.stringValue == second && summary["first_seq"] == 1, "\(scripted.output)")
        #expect(summary["sha256"]?.stringValue?.count == 64 && summary["records"]?.intValue == Int64(records.count), "\(scripted.output)")

        // Never overwritten; a range with no records and a malformed time are errors.
        let again = try CLI.run(["audit", "export", "--since", "2000-01-01T00:00:00Z", "--out", bundle] + common, environment: env)
        #expect(again.status == 1 && again.stderr.contains("never overwritten"), "\(again.output)")
        let empty = try CLI.run(["audit", "export", "--since", "2099-01-01T00:00:00Z", "--out", dir.file("empty")] + common, environment: env)
        #expect(empty.status == 1 && empty.stderr.contains("no audit records"), "\(empty.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("empty")))
        let malformed = try CLI.run(["audit", "export", "--since", "yesterday", "--out", dir.file("x")] + common, environment: env)
        #expect(malformed.status != 0 && malformed.stderr.contains("RFC 3339"), "\(malformed.output)")
    }
}
