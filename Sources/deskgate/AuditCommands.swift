import ArgumentParser
import Audit
import DeskgateAPI
import DeskgateClient
import JSONRPC

#if canImport(Glibc)
import Glibc
#endif

/// `deskgate audit …`: read and check the audit log.
struct AuditGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read, verify, export and reset the audit log.",
        subcommands: [
            AuditTail.self, AuditQueryCommand.self, AuditVerifyCommand.self, AuditExportCommand.self, AuditResetCommand.self,
        ])
}

/// Filters shared by `tail` and `query`, in `audit.query` form.
struct AuditFilterOptions: ParsableArguments {
    @Option(name: .customLong("client-exe"), help: "Only records whose client executable is this path.")
    var clientExe: String?
    @Option(help: "Only records for this method, e.g. text.set.")
    var method: String?
    @Option(help: "Only decisions with this effect: allow, ask or deny.")
    var decision: String?
    @Option(help: "Only a task's records: its begin and end, the requests it allowed and their outcomes.")
    var task: String?

    func params(into object: inout JSONObject) {
        if let clientExe { object["client_exe"] = .string(clientExe) }
        if let method { object["method"] = .string(method) }
        if let decision { object["decision"] = .string(decision) }
        if let task { object["task"] = .string(task) }
    }
}

struct AuditTail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail", abstract: "Show the newest audit records; -f keeps following.")
    @OptionGroup var client: ClientOptions
    @OptionGroup var filter: AuditFilterOptions
    @Option(name: [.customShort("n"), .long], help: "Show the matching records among the newest N first.") var lines = 20
    @Flag(name: .shortAndLong, help: "Keep printing new records as they are written.") var follow = false

    func run() async throws {
        try await runReporting {
            guard lines >= 0 else { throw CLIFailure(ValidationError("--lines must be ≥ 0")) }
            // Where the log ends: from last_seq, or by paging to the end.
            let probe = try await query(sinceSeq: 0, limit: 1)
            var last = probe["last_seq"]?.intValue ?? 0
            if probe["last_seq"] == nil {
                var next: Int64 = 0
                while true {
                    let page = (try await query(sinceSeq: next, limit: AuditFilter.maxLimit))["records"]?.arrayValue ?? []
                    guard let seq = page.last?["seq"]?.intValue else { break }
                    last = seq
                    next = seq + 1
                    if page.count < AuditFilter.maxLimit { break }
                }
            }
            var next = last + 1
            if lines > 0 { next = try await printFrom(max(0, last - Int64(lines) + 1), until: last) }
            guard follow else { return }
            while true {
                try await Task.sleep(for: .seconds(1))
                next = try await printFrom(next, until: nil)
            }
        }
    }

    private func query(sinceSeq: Int64, limit: Int, filtered: Bool = false) async throws -> JSONValue {
        var params = JSONObject()
        params["since_seq"] = .int(sinceSeq)
        params["limit"] = .int(Int64(limit))
        if filtered { filter.params(into: &params) }
        return try await client.call("audit.query", .object(params))
    }

    /// Prints matching records from `seq` on (up to `last` if given); returns the next seq to ask for.
    private func printFrom(_ seq: Int64, until last: Int64?) async throws -> Int64 {
        var next = seq
        while true {
            let result = try await query(sinceSeq: next, limit: AuditFilter.maxLimit, filtered: true)
            let records = result["records"]?.arrayValue ?? []
            for record in records {
                guard let s = record["seq"]?.intValue else { continue }
                if let last, s > last { return last + 1 }
                next = s + 1
                // Our own polling is audited too; showing it would feed on itself.
                if record["method"] == "audit.query", record["client"]?["pid"]?.intValue == Int64(getpid()) { continue }
                print(client.json ? JSONWriter.string(record, sortedKeys: true) : AuditTable.row(record))
            }
            fflush(nil)
            if records.count < AuditFilter.maxLimit {
                // Nothing more matches up to the log's end (last_seq is read with the records).
                if let last { return last + 1 }
                if let end = result["last_seq"]?.intValue { next = max(next, end + 1) }
                return next
            }
        }
    }
}

struct AuditQueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Search the audit log (oldest first).")
    @OptionGroup var client: ClientOptions
    @OptionGroup var filter: AuditFilterOptions
    @Option(name: .customLong("since-seq"), help: "Records from this seq on.") var sinceSeq: Int64?
    @Option(help: "Records at or after this RFC 3339 time, e.g. 2026-11-24T08:00:00Z.") var since: String?
    @Option(help: "At most this many records (1 to 1000).") var limit = 100

    func run() async throws {
        try await runReporting {
            var params = JSONObject()
            if let sinceSeq { params["since_seq"] = .int(sinceSeq) }
            if let since { params["since"] = .string(since) }
            params["limit"] = .int(Int64(limit))
            filter.params(into: &params)
            let result = try await client.call("audit.query", .object(params))
            let records = result["records"]?.arrayValue ?? []
            if client.json {
                print(JSONWriter.string(result))
            } else {
                print(AuditTable.header)
                for record in records { print(AuditTable.row(record)) }
            }
        }
    }
}

struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the audit hash chain (through the daemon, the files with --state-dir/--journal, or an exported --bundle).",
        discussion: """
            Without options the daemon checks its log (audit.verify). With --state-dir, or with --journal, \
            the files are read directly (default state dir: $XDG_STATE_HOME/deskgate); --journal also \
            compares every record and checkpoint the daemon mirrored to the systemd journal with the \
            local log, which catches a cut tail (even after a crash), a truncated or a rewritten log, \
            and says what the journal knows of the directory before this log: fresh (nothing), reset \
            (deskgate audit reset) or deleted (an earlier log and no reset: a failure). \
            With --bundle FILE, checks a bundle written by `deskgate audit export`, offline (no daemon, \
            audit directory or journal needed): every record's hash, the chain from the hash the first \
            record follows to the last record, and that the journal checkpoints and record copies the \
            bundle carries agree with its records and vouch for the last one (--chain-only: the chain \
            alone, for a bundle exported without a journal). The first bad record is named. \
            Exit status 0 when everything verifies, 1 otherwise.
            """)
    @OptionGroup var client: ClientOptions
    @Flag(help: "Also check the local chain against the journal checkpoints.") var journal = false
    @Option(name: .customLong("state-dir"), help: "Read the log under DIR/audit directly.") var stateDir: String?
    @Option(help: "Check this exported bundle offline instead of a log.", completion: .file()) var bundle: String?
    @Flag(
        name: .customLong("chain-only"),
        help: "With --bundle: do not require journal evidence for the last record (the chain's own consistency only).")
    var chainOnly = false

    func run() async throws {
        try await runReporting {
            if let bundle {
                guard !journal, stateDir == nil else {
                    throw CLIFailure(ValidationError("--bundle is checked offline: it takes no --journal or --state-dir"))
                }
                let bytes: [UInt8]
                do { bytes = try AuditFiles.read(bundle) } catch { throw CLIFailure(error) }
                let result = AuditBundle.verify(bytes, requireJournal: !chainOnly)
                client.emit(result.json, readable: AuditTable.bundleVerification)
                if !result.ok { throw ExitCode(1) }
                return
            }
            if chainOnly { throw CLIFailure(ValidationError("--chain-only goes with --bundle")) }
            let result: JSONValue
            if journal || stateDir != nil {
                let base = stateDir ?? DeskgatePaths.stateDirectory(environment: currentEnvironment())
                do {
                    result = try AuditVerifier.verify(directory: base + "/audit", journal: journal).json
                } catch {
                    throw CLIFailure(error)
                }
            } else {
                result = try await client.call("audit.verify")
            }
            client.emit(result, readable: AuditTable.verification)
            if result["ok"]?.boolValue != true { throw ExitCode(1) }
        }
    }
}

/// `deskgate audit export --since T --out FILE`: a self-contained bundle for incident response.
struct AuditExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the audit records of a time range, with what verifies them, to one bundle file.",
        discussion: """
            Reads the log under DIR/audit directly (default state dir: $XDG_STATE_HOME/deskgate; no \
            daemon needed) and writes one JSON file (format deskgate-audit-bundle/1): the records from \
            the first at or after --since to the last before --until, exactly as stored, the hash the \
            first one follows, the systemd journal's checkpoints and record copies for those records \
            (read as verify --journal reads them), the daemon's build (from daemon.info when a daemon \
            answers on $DESKGATE_SOCKET or the default socket, else this binary's), the policy files' \
            SHA-256 now and the policy loads in effect when the range starts. The installation key is \
            never exported. Check the bundle anywhere with `deskgate audit verify --bundle FILE`. \
            Times are RFC 3339, as for `audit query --since`, e.g. 2026-11-24T08:00:00Z. The file is \
            created with mode 0600 and never overwritten.
            """)
    @Option(help: "Records at or after this RFC 3339 time.") var since: String
    @Option(help: "Records before this RFC 3339 time (default: to the end of the log).") var until: String?
    @Option(help: "The bundle file to create.", completion: .file()) var out: String
    @Option(name: .customLong("state-dir"), help: "Read the log under DIR/audit (default: $XDG_STATE_HOME/deskgate).")
    var stateDir: String?
    @Option(name: .customLong("config-dir"), help: "The user policy's directory (default: $XDG_CONFIG_HOME/deskgate).")
    var configDir: String?
    @Option(name: .customLong("system-policy-dir"), help: "The admin policy directory (default: /etc/deskgate/policy.d).")
    var systemPolicyDir: String?
    @Flag(name: .customLong("no-journal"), help: "Do not read the systemd journal (the bundle then verifies only with --chain-only).")
    var noJournal = false
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await runReporting {
            let environment = currentEnvironment()
            guard let sinceMicros = RFC3339.parse(since) else {
                throw CLIFailure(ValidationError("--since: expected an RFC 3339 time, e.g. 2026-11-24T08:00:00Z"))
            }
            var untilMicros: Int64?
            if let until {
                guard let parsed = RFC3339.parse(until) else {
                    throw CLIFailure(ValidationError("--until: expected an RFC 3339 time, e.g. 2026-11-24T09:00:00Z"))
                }
                guard parsed > sinceMicros else { throw CLIFailure(ValidationError("--until must be after --since")) }
                untilMicros = parsed
            }
            let directory = (stateDir ?? DeskgatePaths.stateDirectory(environment: environment)) + "/audit"
            var extra = JSONObject()
            extra["exporter"] = DeskgateAPI.buildJSON
            extra["daemon"] = await Self.daemonBuild()
            extra["policy_files"] = AuditBundle.policyFiles(
                systemPolicyDirectory: systemPolicyDir ?? DeskgatePaths.systemPolicyDirectory,
                userPolicyFile: (configDir ?? DeskgatePaths.configDirectory(environment: environment)) + "/policy.toml")
            let export: AuditBundleExport
            do {
                export = try AuditBundle.export(
                    directory: directory, sinceMicros: sinceMicros, untilMicros: untilMicros, journal: noJournal ? .none : .system,
                    extra: extra)
                try AuditFiles.create(out, export.bytes)
            } catch {
                throw CLIFailure(error)
            }
            if output.json {
                var summary = export.json.objectValue ?? [:]
                summary["file"] = .string(out)
                print(JSONWriter.string(.object(summary)))
            } else {
                print(
                    "wrote \(out): records \(export.firstSeq)-\(export.lastSeq) (\(export.records)), "
                        + "\(export.checkpoints) journal checkpoints, \(export.journalRecords) journal record copies")
                print("bundle sha256: \(export.sha256) (keep it where the bundle cannot change it)")
            }
            for warning in export.warnings { FileHandleStderr.write("deskgate: warning: \(warning)\n") }
        }
    }

    /// The running daemon's build (`daemon.info`), or this binary's when no daemon answers within 2 s.
    static func daemonBuild() async -> JSONValue {
        var answer: JSONValue?
        if let client = try? await DeskgateClient.connect() {
            answer = try? await client.call("daemon.info", nil, timeout: .seconds(2))
            client.closeNow()
        }
        if let build = answer?["build"], !build.isNull {
            return ["source": "daemon.info", "pid": answer?["pid"] ?? .null, "build": build]
        }
        return ["source": "no daemon answered; this deskgate binary's build", "build": DeskgateAPI.buildJSON]
    }
}

/// `deskgate audit reset --yes`: retire the log on purpose (recorded in the journal).
struct AuditResetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Retire the audit log: move it aside and let the daemon start a new one (recorded in the journal).",
        discussion: """
            Moves DIR/audit (segments and key) to DIR/audit.reset-<UTC time> and records the reset \
            (log id, last seq and hash, new place) in the systemd journal, so that `deskgate audit \
            verify --journal` on the next log reports a reset rather than a deleted log. Nothing is \
            deleted. Stop the daemon first (systemctl --user stop deskgate.socket deskgate.service): \
            a running daemon holds the log and the reset is refused. Without --yes it only says what \
            it would do.
            """)
    @Option(name: .customLong("state-dir"), help: "The state directory whose audit/ to reset (default: $XDG_STATE_HOME/deskgate).")
    var stateDir: String?
    @Flag(help: "Really reset (without it, only say what would happen).") var yes = false
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await runReporting {
            let directory = (stateDir ?? DeskgatePaths.stateDirectory(environment: currentEnvironment())) + "/audit"
            guard yes else {
                let logID: String
                do { logID = try AuditLog.logID(directory: directory) } catch { throw CLIFailure(error) }
                FileHandleStderr.write(
                    "deskgate: this would retire audit log \(logID) in \(directory): move it to \(directory).reset-<time> "
                        + "and record the reset in the journal. Run again with --yes to do it.\n")
                throw ExitCode(1)
            }
            let result: AuditResetResult
            do { result = try AuditLog.reset(directory: directory) } catch { throw CLIFailure(error) }
            if output.json {
                print(JSONWriter.string(result.json))
                return
            }
            print("reset audit log \(result.logID) (last seq \(result.lastSeq)): moved to \(result.movedTo)")
            if result.journaled {
                print("the journal records the reset; the daemon starts a new log at its next start")
            } else {
                FileHandleStderr.write(
                    "deskgate: warning: no journal is running, so the reset is recorded nowhere else; "
                        + "verify --journal cannot tell it from a deletion\n")
            }
        }
    }
}

/// Readable renderings of audit records and verification results.
enum AuditTable {
    static let header =
        "\(Readable.pad("SEQ", 7)) \(Readable.pad("TIME", 27)) \(Readable.pad("KIND", 17)) \(Readable.pad("EFFECT", 6)) "
        + "\(Readable.pad("METHOD", 17)) \(Readable.pad("CLIENT", 24)) TARGET / OUTCOME"

    /// The end of a long path, which is the part that tells executables apart.
    static func tail(_ s: String, _ width: Int) -> String {
        let escaped = JSONWriter.escapedForMessage(s, limit: 4096)
        return escaped.count <= width ? escaped : "…" + escaped.suffix(width - 1)
    }

    static func row(_ record: JSONValue) -> String {
        let seq = record["seq"]?.intValue.map(String.init) ?? "?"
        let exe = record["client"]?["exe"]?.stringValue ?? record["client"]?["label"]?.stringValue ?? "-"
        var target: [String] = []
        if let app = record["target"]?["app"]?.stringValue { target.append(app) }
        if let name = record["target"]?["name"]?.stringValue ?? record["target"]?["field"]?.stringValue {
            target.append("\"\(JSONWriter.escapedForMessage(name, limit: 40))\"")
        }
        if let outcome = record["outcome"] { target.append("→ \(outcome.stringValue ?? JSONWriter.string(outcome))") }
        if let reason = record["decision"]?["reason"]?.stringValue { target.append("(\(reason))") }
        if target.isEmpty, let details = record["details"] { target.append(JSONWriter.escapedForMessage(JSONWriter.string(details), limit: 80)) }
        return "\(Readable.pad(seq, 7)) \(Readable.pad(record["time"]?.stringValue ?? "", 27)) "
            + "\(Readable.pad(record["kind"]?.stringValue ?? "", 17)) \(Readable.pad(record["decision"]?["effect"]?.stringValue ?? "", 6)) "
            + "\(Readable.pad(record["method"]?.stringValue ?? "", 17)) \(Readable.pad(tail(exe, 24), 24)) "
            + target.joined(separator: " ")
    }

    /// `verify --bundle`: the verdict, the first bad record and every problem, what the journal
    /// evidence vouched for, and what the check cannot prove.
    static func bundleVerification(_ result: JSONValue) -> String {
        var lines: [String] = []
        let records = result["records"]?.intValue ?? 0
        let span = result["first_seq"]?.intValue.map { first in " \(first)–\(result["last_seq"]?.intValue ?? first)" } ?? ""
        let log = result["log_id"]?.stringValue.map { " of log \($0)" } ?? ""
        if result["ok"]?.boolValue == true {
            lines.append("ok: bundle verifies: records\(span) (\(records))\(log)")
        } else {
            lines.append("FAILED: bundle does not verify: \(records) records\(span)\(log)")
            if let bad = result["first_bad_seq"]?.intValue { lines.append("first bad record: seq \(bad)") }
            for problem in result["problems"]?.arrayValue ?? [] { lines.append("  - \(problem.stringValue ?? "")") }
        }
        let checkpoints = result["checkpoints_matched"]?.intValue ?? 0
        let copies = result["journal_records_matched"]?.intValue ?? 0
        if result["journal"]?.boolValue == true {
            var journal = "journal evidence: \(checkpoints) checkpoints and \(copies) record copies agree"
            if let through = result["vouched_through"]?.intValue { journal += "; they vouch for every record through seq \(through)" }
            lines.append(journal)
        } else {
            lines.append("journal evidence: none in the bundle")
        }
        if let anchor = result["anchor_checkpoint"], let seq = anchor["seq"]?.intValue, let hash = anchor["hash"]?.stringValue {
            lines.append("newest checkpoint: seq \(seq) hash \(hash)")
        }
        let writers = (result["writers"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !writers.isEmpty { lines.append("journal entries written by: \(writers.joined(separator: ", "))") }
        for note in result["notes"]?.arrayValue ?? [] { lines.append("note: \(note.stringValue ?? "")") }
        return lines.joined(separator: "\n")
    }

    static func verification(_ result: JSONValue) -> String {
        var lines: [String] = []
        let records = result["records"]?.intValue ?? 0
        if result["ok"]?.boolValue == true {
            lines.append("ok: \(records) records verify" + (result["last_seq"]?.intValue.map { " (last seq \($0))" } ?? ""))
        } else {
            lines.append("FAILED: \(records) records read")
            if let bad = result["first_bad_seq"]?.intValue { lines.append("first bad seq: \(bad)") }
        }
        if let reason = result["reason"]?.stringValue { lines.append("note: \(reason)") }
        if let journal = result["journal"] {
            let verdict = journal["ok"]?.boolValue == true ? "ok" : "FAILED"
            if let id = journal["log_id"]?.stringValue, !id.isEmpty {
                lines.append("journal: \(verdict), \(journal["checkpoints"]?.intValue ?? 0) checkpoints for log \(id)")
            } else {
                lines.append("journal: \(verdict) (no log in the directory)")
            }
            for problem in journal["problems"]?.arrayValue ?? [] { lines.append("  - \(problem.stringValue ?? "")") }
            if let records = journal["records"]?.intValue { lines.append("journal records compared: \(records)") }
            if let history = journal["history"]?.stringValue {
                let previous = journal["previous_log"]
                let id = previous?["log_id"]?.stringValue ?? "?"
                switch history {
                case "fresh": lines.append("history: fresh (the journal knows no earlier log in this directory)")
                case "reset":
                    lines.append(
                        "history: reset (earlier log \(id) retired at \(previous?["reset_time"]?.stringValue ?? "?") "
                            + "by \(previous?["reset_by"]?.stringValue ?? "unknown"))")
                default: lines.append("history: DELETED (earlier log \(id), last seq \(previous?["last_seq"]?.intValue ?? 0), was never reset)")
                }
            }
            let writers = (journal["writers"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !writers.isEmpty { lines.append("written by: \(writers.joined(separator: ", "))") }
        }
        return lines.joined(separator: "\n")
    }
}

/// The bundle file: read whole; created new with mode 0600 (an existing file is never replaced).
enum AuditFiles {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw Failure(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
        }
    }

    static func create(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it exists (a bundle is never overwritten)" : String(cString: strerror(errno))
            throw Failure(description: "cannot create \(path): \(reason)")
        }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                unlink(path)
                throw Failure(description: "cannot write \(path): \(reason)")
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw Failure(description: "cannot sync \(path): \(String(cString: strerror(errno)))") }
    }
}
