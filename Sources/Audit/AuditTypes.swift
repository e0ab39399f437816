public import JSONRPC

/// Whether records are mirrored to the systemd journal.
public enum JournalMode: Sendable, Equatable {
    /// Mirror when a journal is listening (`/run/systemd/journal/socket` exists at open).
    case auto
    /// Never touch the journal.
    case off
}

/// Where and how the audit log is kept. The broker parses `[audit]` policy settings into these
/// plain numbers (admin layer wins, user layer may only lengthen retention).
public struct AuditConfig: Sendable {
    /// The audit directory (created 0700; files 0600).
    public var directory: String
    /// A segment is closed and a new one started once it reaches this size.
    public var segmentMaxBytes: Int
    /// Whole segments whose newest record is older than this are pruned.
    public var retentionDays: Int
    /// Oldest segments are pruned while the log is larger than this (the current segment is kept).
    public var maxBytes: Int?
    /// Open without pruning anything until ``AuditLog/applyRetention(_:)`` says what to keep
    /// (`retentionDays` and `maxBytes` are ignored). The daemon opens its log before it has read
    /// the policy that sets retention: the policy loads are themselves audit records.
    public var deferRetention = false
    public var journal: JournalMode
    /// Test hook: split each batch write into `write()` calls of at most this many bytes, so
    /// crash-injection tests can tear lines. Leave nil: one write per batch.
    public var writeChunkBytes: Int?
    /// Test hook: the time (microseconds since the epoch) records are stamped with and retention
    /// measures age against. Leave nil: the wall clock.
    public var clock: (@Sendable () -> Int64)?

    public init(
        directory: String, segmentMaxBytes: Int = 16 << 20, retentionDays: Int = 30, maxBytes: Int? = nil,
        journal: JournalMode = .auto, writeChunkBytes: Int? = nil
    ) {
        self.directory = directory
        self.segmentMaxBytes = segmentMaxBytes
        self.retentionDays = retentionDays
        self.maxBytes = maxBytes
        self.journal = journal
        self.writeChunkBytes = writeChunkBytes
    }
}

/// How much of the log is kept: whole segments whose newest record is older than `days` are
/// pruned, and the oldest segments while the log is larger than `maxBytes`.
public struct AuditRetention: Sendable, Equatable {
    public var days: Int
    /// nil: no size limit.
    public var maxBytes: Int?

    public init(days: Int, maxBytes: Int? = nil) {
        self.days = days
        self.maxBytes = maxBytes
    }

    public var json: JSONValue { ["days": .int(Int64(days)), "max_bytes": maxBytes.map { .int(Int64($0)) } ?? .null] }
}

/// What happened to a request, for `outcome` records.
public enum AuditOutcome: Sendable, Equatable {
    case ok
    /// The request failed with this JSON-RPC error code (recorded as the integer).
    case error(ErrorCode)
    /// The daemon stopped between decision and outcome (written at recovery).
    case unknown
    /// Nothing was done: the element or its app was no longer the one decided on (or the one
    /// the client was shown) when the action was about to run.
    case changed

    public var json: JSONValue {
        switch self {
        case .ok: "ok"
        case .error(let code): .int(Int64(code.rawValue))
        case .unknown: "unknown"
        case .changed: "changed"
        }
    }
}

/// One record to append. The log adds `seq`, `time`, `prev` and `hash`, and sanitizes every string
/// (escaped, bounded). Typed values must already be digests (``AuditLog/valueDigest(_:)``), never
/// the values themselves.
public struct AuditEntry: Sendable {
    /// `decision`, `outcome`, `policy_load`, `grant_remembered`, `grant_revoked`,
    /// `helper_registered`, `peer_refused`, … (the log itself writes `recovered`,
    /// `integrity_break`, `log_started` and `pruned`).
    public var kind: String
    /// The request's audit id: the same in its decision and outcome records (written as
    /// `request_id`, the name existing logs and tools know).
    public var auditID: String?
    /// `{uid, pid, exe, script, unit, label}`.
    public var client: JSONValue?
    public var method: String?
    /// `{app, app_exe, role, name or field, ref, value?: {len, hmac}}`.
    public var target: JSONValue?
    /// `{effect, reason, rule}`.
    public var decision: JSONValue?
    public var outcome: AuditOutcome?
    public var durationMs: Double?
    /// Kind-specific fields (e.g. a policy file's path and sha256), stored under `details`.
    public var details: JSONObject

    public init(
        kind: String, auditID: String? = nil, client: JSONValue? = nil, method: String? = nil,
        target: JSONValue? = nil, decision: JSONValue? = nil, outcome: AuditOutcome? = nil,
        durationMs: Double? = nil, details: JSONObject = [:]
    ) {
        self.kind = kind
        self.auditID = auditID
        self.client = client
        self.method = method
        self.target = target
        self.decision = decision
        self.outcome = outcome
        self.durationMs = durationMs
        self.details = details
    }

    /// The record body before sealing: sanitized, null members left out.
    func body() -> JSONObject {
        var o = JSONObject()
        o.append("kind", .string(AuditSanitizer.sanitize(kind, limit: 64)))
        if let auditID { o.append("request_id", .string(AuditSanitizer.sanitize(auditID, limit: 256))) }
        if let client, !client.isNull { o.append("client", AuditSanitizer.sanitize(client)) }
        if let method { o.append("method", .string(AuditSanitizer.sanitize(method, limit: 256))) }
        if let target, !target.isNull { o.append("target", AuditSanitizer.sanitize(target)) }
        if let decision, !decision.isNull { o.append("decision", AuditSanitizer.sanitize(decision)) }
        if let outcome { o.append("outcome", outcome.json) }
        if let durationMs, durationMs.isFinite {
            // Microsecond resolution keeps the canonical number short and stable.
            o.append("duration_ms", .double((durationMs * 1000).rounded() / 1000))
        }
        if !details.isEmpty { o.append("details", AuditSanitizer.sanitize(.object(details))) }
        return o
    }
}

/// Proof that a record is on disk: returned by ``AuditLog/append(_:)`` after fsync.
public struct AuditReceipt: Sendable, Equatable {
    public let seq: Int64
    public let hash: String
    public let time: String
}

/// Audit failures. Every one converts to a JSON-RPC error the daemon can return as is.
public enum AuditError: Error, CustomStringConvertible, Equatable {
    /// The log cannot be written (disk full, I/O error, permissions, closed): gated requests must
    /// be refused (-32007) until it can write again.
    case unavailable(String)
    /// A query filter is malformed.
    case invalidFilter(field: String, reason: String)

    public var description: String {
        switch self {
        case .unavailable(let reason): "audit log unavailable: \(reason)"
        case .invalidFilter(let field, let reason): "invalid audit filter \(field): \(reason)"
        }
    }
}

/// The log's state for `daemon.info` and health checks.
public struct AuditHealth: Sendable, Equatable {
    /// False while appends fail; gated requests are refused then.
    public var writable: Bool
    public var lastError: String?
    /// Set when start-up verification found a break; stays set (never silently repaired).
    public var firstBadSeq: Int64?
    public var lastSeq: Int64
    public var lastHash: String
    public var journal: Bool
    public var directory: String
    /// The log's id (`DESKGATE_LOG_ID` in the journal): a new key, a new id.
    public var logID: String
    /// The retention the log prunes by; nil while pruning is held (see `retentionHeld`).
    public var retention: AuditRetention?
    /// The audit directory was removed or replaced under the open log: writing stopped for good
    /// (until the log is opened again).
    public var detached = false
    /// Why nothing is pruned right now (retention not known yet, or the policy that sets it
    /// failed to load).
    public var retentionHeld: String?

    public var json: JSONValue {
        var o = JSONObject()
        o.append("writable", .bool(writable))
        if let lastError { o.append("last_error", .string(lastError)) }
        if let firstBadSeq { o.append("first_bad_seq", .int(firstBadSeq)) }
        o.append("last_seq", .int(lastSeq))
        o.append("last_hash", .string(lastHash))
        o.append("journal", .bool(journal))
        o.append("directory", .string(directory))
        o.append("log_id", .string(logID))
        o.append("detached", .bool(detached))
        if let retention {
            o.append("retention", retention.json)
        } else {
            o.append("retention", ["held": .string(retentionHeld ?? "no retention set")])
        }
        return .object(o)
    }
}

/// The result of checking the chain (and, on request, the journal checkpoints).
public struct AuditVerification: Sendable, Equatable {
    public var ok: Bool
    /// Lines read.
    public var records: Int
    /// The first record that does not verify: the chain is good up to `firstBadSeq - 1`.
    public var firstBadSeq: Int64?
    public var reason: String?
    public var lastSeq: Int64?
    /// Present when checked against the journal.
    public var journal: JournalVerification?

    public var json: JSONValue {
        var o = JSONObject()
        o.append("ok", .bool(ok))
        o.append("records", .int(Int64(records)))
        if let firstBadSeq { o.append("first_bad_seq", .int(firstBadSeq)) }
        if let reason { o.append("reason", .string(reason)) }
        if let lastSeq { o.append("last_seq", .int(lastSeq)) }
        if let journal { o.append("journal", journal.json) }
        return .object(o)
    }
}

/// The local chain compared with the checkpoints the log wrote to the journal.
public struct JournalVerification: Sendable, Equatable {
    public var ok: Bool
    public var logID: String
    public var checkpoints: Int
    /// Each a sentence naming the checkpoint seq and what is wrong.
    public var problems: [String]
    /// The executables journald recorded as writing these records and checkpoints (`_EXE`, which
    /// the writer cannot forge): anything but deskgated here means someone else wrote them.
    public var writers: [String]
    /// Records of this log found in the journal, each compared with the local record of its seq.
    public var records = 0
    /// What the journal knows of this audit directory before this log: `fresh` (no earlier log),
    /// `reset` (the earlier log was retired with `deskgate audit reset`) or `deleted` (an earlier
    /// log and no reset: the directory or its key was deleted; a problem).
    public var history = "fresh"
    /// The earlier log, when there was one.
    public var previousLog: JournalLogSummary?

    public var json: JSONValue {
        var o: JSONObject = [
            "ok": .bool(ok), "log_id": .string(logID), "checkpoints": .int(Int64(checkpoints)), "records": .int(Int64(records)),
            "history": .string(history), "problems": .array(problems.map { .string($0) }),
            "writers": .array(writers.map { .string($0) }),
        ]
        if let previousLog { o.append("previous_log", previousLog.json) }
        return .object(o)
    }
}

/// `audit.query` filters. Records come oldest first.
public struct AuditFilter: Sendable, Equatable {
    /// Records with `seq >= sinceSeq`.
    public var sinceSeq: Int64?
    /// Records at or after this time (microseconds since the epoch).
    public var sinceMicros: Int64?
    public var clientExe: String?
    public var method: String?
    /// `decision.effect`: allow, ask or deny.
    public var decision: String?
    /// A task's records: its begin and end, the decisions it allowed and their outcomes.
    public var task: String?
    /// 1…1000, default 100.
    public var limit: Int

    public static let maxLimit = 1000

    public init(
        sinceSeq: Int64? = nil, sinceMicros: Int64? = nil, clientExe: String? = nil, method: String? = nil,
        decision: String? = nil, limit: Int = 100
    ) {
        self.sinceSeq = sinceSeq
        self.sinceMicros = sinceMicros
        self.clientExe = clientExe
        self.method = method
        self.decision = decision
        self.limit = limit
    }

    /// From `audit.query` params: `since_seq`, `since` (RFC 3339), `client_exe`, `method`,
    /// `decision`, `limit`.
    public init(json params: JSONValue?) throws(AuditError) {
        self.init()
        guard let params, !params.isNull else { return }
        guard let object = params.objectValue else { throw .invalidFilter(field: "params", reason: "expected an object") }
        for (key, value) in object {
            switch key {
            case "since_seq":
                guard let n = value.intValue, n >= 0 else { throw .invalidFilter(field: key, reason: "expected an integer ≥ 0") }
                sinceSeq = n
            case "since":
                guard let s = value.stringValue, let micros = RFC3339.parse(s) else {
                    throw .invalidFilter(field: key, reason: "expected an RFC 3339 time")
                }
                sinceMicros = micros
            case "client_exe", "method", "decision", "task":
                guard let s = value.stringValue else { throw .invalidFilter(field: key, reason: "expected a string") }
                switch key {
                case "client_exe": clientExe = s
                case "method": method = s
                case "task": task = s
                default: decision = s
                }
            case "limit":
                guard let n = value.intValue, n >= 1, n <= Int64(Self.maxLimit) else {
                    throw .invalidFilter(field: key, reason: "expected an integer 1…\(Self.maxLimit)")
                }
                limit = Int(n)
            default:
                throw .invalidFilter(field: key, reason: "unknown filter")
            }
        }
    }
}

/// Records matching a filter, and the newest seq in the log (for `tail -f`).
public struct AuditQueryResult: Sendable {
    public var records: [JSONValue]
    public var lastSeq: Int64

    public var json: JSONValue { ["records": .array(records), "last_seq": .int(lastSeq)] }
}
