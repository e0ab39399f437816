import CSystemd
import Dispatch
import Glibc
import JSONRPC

/// Mirrors records and checkpoints to the systemd journal through libsystemd, on its own serial
/// queue after the record is durable locally (the journal is a copy, not part of the write-ahead
/// path, and a slow journald must not stall appends). Every entry names the log
/// (`DESKGATE_LOG_ID`) and the audit directory's real path (`DESKGATE_AUDIT_DIR`), so a log that
/// replaced another in the same directory can be told from a fresh one.
final class JournalMirror: Sendable {
    static let socketPath = "/run/systemd/journal/socket"
    /// Stable MESSAGE_IDs (journalctl MESSAGE_ID=… finds every deskgate audit entry of a type).
    static let recordMessageID = "8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b51"
    static let checkpointMessageID = "8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b52"
    /// `deskgate audit reset`: a log deliberately retired.
    static let resetMessageID = "8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b53"

    let logID: String
    /// The audit directory's real path.
    let directory: String
    private let queue = DispatchQueue(label: "deskgate.audit.journal")

    init(logID: String, directory: String) {
        self.logID = logID
        self.directory = directory
    }

    static var present: Bool { POSIXFile.exists(socketPath) }

    struct Mirrored: Sendable {
        let seq: Int64
        let hash: String
        let kind: String
        let method: String?
        let decision: String?
        let clientExe: String?
        let auditID: String?
        let line: [UInt8]
    }

    static func mirrored(_ record: JSONObject, seq: Int64, hash: String, line: [UInt8]) -> Mirrored {
        Mirrored(
            seq: seq, hash: hash, kind: record["kind"]?.stringValue ?? "",
            method: record["method"]?.stringValue, decision: record["decision"]?["effect"]?.stringValue,
            clientExe: record["client"]?["exe"]?.stringValue, auditID: record["request_id"]?.stringValue,
            line: line.last == 0x0A ? Array(line.dropLast()) : line)
    }

    func mirror(_ records: [Mirrored]) {
        let logID = self.logID
        let directory = self.directory
        queue.async {
            for r in records {
                var message = "deskgate audit seq=\(r.seq) \(r.kind)"
                if let m = r.method { message += " method=\(m)" }
                if let d = r.decision { message += " decision=\(d)" }
                if let e = r.clientExe { message += " exe=\(e)" }
                var fields = [
                    "MESSAGE=" + message, "MESSAGE_ID=" + Self.recordMessageID, "PRIORITY=6",
                    "SYSLOG_IDENTIFIER=deskgated", "DESKGATE_LOG_ID=" + logID, "DESKGATE_AUDIT_DIR=" + directory,
                    "DESKGATE_SEQ=\(r.seq)", "DESKGATE_HASH=" + r.hash, "DESKGATE_KIND=" + r.kind,
                ]
                if let m = r.method { fields.append("DESKGATE_METHOD=" + m) }
                if let d = r.decision { fields.append("DESKGATE_DECISION=" + d) }
                if let e = r.clientExe { fields.append("DESKGATE_CLIENT_EXE=" + e) }
                if let id = r.auditID { fields.append("DESKGATE_REQUEST_ID=" + id) }
                Self.send(fields.map { Array($0.utf8) } + [Array("DESKGATE_RECORD=".utf8) + r.line])
            }
        }
    }

    func checkpoint(seq: Int64, hash: String, segment: String, reason: String) {
        let logID = self.logID
        let directory = self.directory
        queue.async {
            Self.send(
                [
                    "MESSAGE=deskgate audit checkpoint seq=\(seq) hash=\(hash) (\(reason))",
                    "MESSAGE_ID=" + Self.checkpointMessageID, "PRIORITY=6", "SYSLOG_IDENTIFIER=deskgated",
                    "DESKGATE_CHECKPOINT=1", "DESKGATE_LOG_ID=" + logID, "DESKGATE_AUDIT_DIR=" + directory,
                    "DESKGATE_SEQ=\(seq)", "DESKGATE_HASH=" + hash,
                    "DESKGATE_SEGMENT=" + segment, "DESKGATE_CHECKPOINT_REASON=" + reason,
                ].map { Array($0.utf8) })
        }
    }

    /// Waits until everything queued has been handed to journald.
    func flush() { queue.sync {} }

    /// Waits (at most 1 s) until the checkpoint `seq` is stored: the last one before the process
    /// exits would otherwise lose its trusted `_EXE` (journald reads it from /proc).
    func awaitStored(checkpointSeq seq: Int64) {
        _ = Self.waitUntilStored(
            ["MESSAGE_ID=" + Self.checkpointMessageID, "DESKGATE_LOG_ID=" + logID, "DESKGATE_SEQ=\(seq)"],
            timeoutMicros: 1_000_000)
    }

    /// Records a deliberate reset of log `logID` (whose last record is `seq`/`hash`) in
    /// `directory`, synchronously. Throws if journald did not take the entry.
    static func sendReset(logID: String, directory: String, seq: Int64, hash: String, movedTo: String) throws(AuditError) {
        let rc = send(
            [
                "MESSAGE=deskgate audit log \(logID) in \(directory) reset (last seq \(seq)); moved to \(movedTo)",
                "MESSAGE_ID=" + resetMessageID, "PRIORITY=5", "SYSLOG_IDENTIFIER=deskgate", "DESKGATE_RESET=1",
                "DESKGATE_LOG_ID=" + logID, "DESKGATE_AUDIT_DIR=" + directory, "DESKGATE_SEQ=\(seq)", "DESKGATE_HASH=" + hash,
                "DESKGATE_MOVED_TO=" + movedTo,
            ].map { Array($0.utf8) })
        if rc < 0 { throw .unavailable("the journal did not take the reset record: \(String(cString: strerror(-rc)))") }
        // journald reads the sender's `_EXE` from /proc when it handles the entry; a CLI that
        // exited first would leave the reset without its writer. Stay until the entry is stored.
        _ = waitUntilStored(["MESSAGE_ID=" + resetMessageID, "DESKGATE_LOG_ID=" + logID], timeoutMicros: 5_000_000)
    }

    /// Waits (event-driven, bounded) until an entry matching every `FIELD=value` is readable.
    static func waitUntilStored(_ matches: [String], timeoutMicros: UInt64) -> Bool {
        guard let query = try? JournalQuery(), (try? query.match([matches])) != nil else { return false }
        let deadline = AuditTime.monotonicMicros() + timeoutMicros
        while true {
            if query.seekTail(), query.previous() { return true }
            let now = AuditTime.monotonicMicros()
            guard now < deadline else { return false }
            query.wait(micros: min(deadline - now, 100_000))
        }
    }

    /// One journal entry; fields are `NAME=value` byte strings (values may hold any bytes).
    @discardableResult
    private static func send(_ fields: [[UInt8]]) -> Int32 {
        // Keep every field's storage alive while the iovecs point into it.
        let storage = fields.map { field -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(field.count, 1), alignment: 1)
            buffer.copyBytes(from: field)
            return buffer
        }
        defer { storage.forEach { $0.deallocate() } }
        var iov = zip(storage, fields).map { iovec(iov_base: $0.0.baseAddress, iov_len: $0.1.count) }
        return iov.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
    }
}

/// A checkpoint read back from the journal.
public struct JournalCheckpoint: Sendable, Equatable {
    public let seq: Int64
    public let hash: String
    public let realtimeMicros: UInt64
    /// `_EXE` as journald recorded it (trusted: the writer cannot forge it).
    public let exe: String?
    public let reason: String?

    public init(seq: Int64, hash: String, realtimeMicros: UInt64, exe: String?, reason: String?) {
        self.seq = seq
        self.hash = hash
        self.realtimeMicros = realtimeMicros
        self.exe = exe
        self.reason = reason
    }
}

/// The last record of a log the journal holds, as its mirror wrote it.
struct JournalRecordRef: Sendable, Equatable {
    let seq: Int64
    let hash: String
}

/// A log the journal knows for an audit directory, other than the one being checked.
public struct JournalLogSummary: Sendable, Equatable {
    public let logID: String
    /// Its newest entry's seq and hash.
    public let lastSeq: Int64
    public let lastHash: String
    public let lastMicros: UInt64
    /// Set when `deskgate audit reset` retired it: when, where the files went, and the `_EXE`
    /// journald recorded for the reset entry (any process of the user can write one: review it).
    public var resetMicros: UInt64?
    public var movedTo: String?
    public var resetBy: String?

    public var json: JSONValue {
        var o = JSONObject()
        o.append("log_id", .string(logID))
        o.append("last_seq", .int(lastSeq))
        o.append("last_hash", .string(lastHash))
        o.append("last_time", .string(RFC3339.format(micros: Int64(clamping: lastMicros))))
        o.append("reset", .bool(resetMicros != nil))
        if let resetMicros { o.append("reset_time", .string(RFC3339.format(micros: Int64(clamping: resetMicros)))) }
        if let movedTo { o.append("moved_to", .string(movedTo)) }
        if let resetBy { o.append("reset_by", .string(resetBy)) }
        return .object(o)
    }
}

/// SHA-256 in 32 bytes rather than 64 hex characters: `verify --journal` holds one per mirrored
/// record.
struct CompactHash: Hashable, Sendable {
    private let a, b, c, d: UInt64

    init?(hex: String) {
        let bytes = Array(hex.utf8)
        guard bytes.count == 64 else { return nil }
        var words: [UInt64] = []
        for part in 0..<4 {
            var word: UInt64 = 0
            for byte in bytes[(part * 16)..<(part * 16 + 16)] {
                let nibble: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
                default: return nil
                }
                word = word << 4 | UInt64(nibble)
            }
            words.append(word)
        }
        (a, b, c, d) = (words[0], words[1], words[2], words[3])
    }

    /// The 64 lower-case hex digits it was made from.
    var hex: String {
        [a, b, c, d].flatMap { word in (0..<8).reversed().map { UInt8(truncatingIfNeeded: word >> (UInt64($0) * 8)) } }.hexString
    }
}

/// What the journal holds about one audit directory and its current log, read in one pass.
struct JournalHistory {
    /// The current log's mirrored records (seq and hash), in journal order.
    var records: [(seq: Int64, hash: CompactHash?)] = []
    var checkpoints: [JournalCheckpoint] = []
    /// `_EXE` of the current log's records and checkpoints.
    var writers: Set<String> = []
    /// The log this directory held before the current one (newest entry before the current
    /// log's first), with its reset if one was recorded.
    var predecessor: JournalLogSummary?
    /// A reset recorded for the current log itself (it should then be gone).
    var currentReset: UInt64?
}

/// Reads deskgate's entries back from the local journal (libsystemd's reader; local files only).
final class JournalQuery {
    private let journal: OpaquePointer

    init() throws(AuditError) {
        var journal: OpaquePointer?
        let rc = sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY))
        guard rc >= 0, let journal else {
            throw .unavailable("cannot open the journal: \(String(cString: strerror(-rc)))")
        }
        self.journal = journal
    }

    deinit { sd_journal_close(journal) }

    /// Entries matching every `FIELD=value` in each group; groups are alternatives.
    func match(_ groups: [[String]]) throws(AuditError) {
        sd_journal_flush_matches(journal)
        for (index, group) in groups.enumerated() {
            if index > 0, sd_journal_add_disjunction(journal) < 0 { throw .unavailable("journal match failed") }
            for match in group {
                let r = match.withCString { sd_journal_add_match(journal, $0, 0) }
                if r < 0 { throw .unavailable("journal match failed: \(String(cString: strerror(-r)))") }
            }
        }
    }

    func seekHead() -> Bool { sd_journal_seek_head(journal) >= 0 }
    func seekTail() -> Bool { sd_journal_seek_tail(journal) >= 0 }
    func next() -> Bool { sd_journal_next(journal) > 0 }
    func previous() -> Bool { sd_journal_previous(journal) > 0 }
    /// Blocks until the journal changes or `micros` pass.
    func wait(micros: UInt64) { _ = sd_journal_wait(journal, micros) }

    func field(_ name: String) -> String? {
        var data: UnsafeRawPointer?
        var length = 0
        guard sd_journal_get_data(journal, name, &data, &length) >= 0, let data else { return nil }
        let bytes = UnsafeRawBufferPointer(start: data, count: length)
        let prefix = name.utf8.count + 1
        guard length >= prefix else { return nil }
        return String(decoding: bytes[prefix...], as: UTF8.self)
    }

    var realtimeMicros: UInt64 {
        var usec: UInt64 = 0
        _ = sd_journal_get_realtime_usec(journal, &usec)
        return usec
    }

    var seq: Int64? { field("DESKGATE_SEQ").flatMap { Int64($0) } }
}

public enum AuditJournalReader {
    /// Checkpoints of log `logID` in journal order. Throws `AuditError.unavailable` if the journal
    /// cannot be opened.
    public static func checkpoints(logID: String) throws(AuditError) -> [JournalCheckpoint] {
        let query = try JournalQuery()
        try query.match([["DESKGATE_CHECKPOINT=1", "DESKGATE_LOG_ID=" + logID]])
        var result: [JournalCheckpoint] = []
        guard query.seekHead() else { return [] }
        while query.next() {
            guard let seq = query.seq, let hash = query.field("DESKGATE_HASH") else { continue }
            result.append(
                JournalCheckpoint(
                    seq: seq, hash: hash, realtimeMicros: query.realtimeMicros, exe: query.field("_EXE"),
                    reason: query.field("DESKGATE_CHECKPOINT_REASON")))
        }
        return result
    }

    /// What opening a log needs from the journal, with one open of it and reads from the tail
    /// only: the newest record of log `logID`, and when the journal has none (a log new to it),
    /// the log `directory` held before.
    static func atOpen(logID: String, directory: String, uid: uid_t) throws(AuditError)
        -> (tail: JournalRecordRef?, previous: JournalLogSummary?)
    {
        let query = try JournalQuery()
        if let tail = try lastRecord(logID: logID, query: query) { return (tail, nil) }
        return (nil, try previousLog(directory: directory, uid: uid, current: logID, query: query))
    }

    /// The newest record of log `logID` in the journal (one entry from the tail).
    static func lastRecord(logID: String, query: JournalQuery) throws(AuditError) -> JournalRecordRef? {
        try query.match([["MESSAGE_ID=" + JournalMirror.recordMessageID, "DESKGATE_LOG_ID=" + logID]])
        guard query.seekTail() else { return nil }
        while query.previous() {
            if let seq = query.seq, let hash = query.field("DESKGATE_HASH") { return JournalRecordRef(seq: seq, hash: hash) }
        }
        return nil
    }

    /// The newest log other than `current` that wrote entries for `directory` (by processes of
    /// `uid`), and whether it was reset after them. Reads back from the tail, at most `limit` entries.
    static func previousLog(directory: String, uid: uid_t, current: String, query: JournalQuery, limit: Int = 10_000)
        throws(AuditError) -> JournalLogSummary?
    {
        try query.match([["DESKGATE_AUDIT_DIR=" + directory, "_UID=\(uid)"]])
        guard query.seekTail() else { return nil }
        var resets: [String: (micros: UInt64, movedTo: String?, exe: String?)] = [:]
        var read = 0
        while read < limit, query.previous() {
            read += 1
            guard let id = query.field("DESKGATE_LOG_ID"), id != current else { continue }
            if query.field("MESSAGE_ID") == JournalMirror.resetMessageID {
                if resets[id] == nil { resets[id] = (query.realtimeMicros, query.field("DESKGATE_MOVED_TO"), query.field("_EXE")) }
                continue
            }
            guard let seq = query.seq, let hash = query.field("DESKGATE_HASH") else { continue }
            var summary = JournalLogSummary(logID: id, lastSeq: seq, lastHash: hash, lastMicros: query.realtimeMicros)
            if let reset = resets[id] {
                summary.resetMicros = reset.micros
                summary.movedTo = reset.movedTo
                summary.resetBy = reset.exe
            }
            return summary
        }
        return nil
    }

    /// Everything `verify --journal` compares, in one pass over the entries of log `logID` and
    /// of `directory` (written by processes of `uid`). Entries written before the directory was
    /// named in them are found by the log id alone.
    static func history(logID: String?, directory: String, uid: uid_t) throws(AuditError) -> JournalHistory {
        let query = try JournalQuery()
        var groups = [["DESKGATE_AUDIT_DIR=" + directory, "_UID=\(uid)"]]
        if let logID { groups.append(["DESKGATE_LOG_ID=" + logID]) }
        try query.match(groups)
        var history = JournalHistory()
        guard query.seekHead() else { return history }
        var currentStarted = false
        // Other logs of this directory seen before the current log's first entry.
        var before: [String: JournalLogSummary] = [:]
        var lastBefore: String?
        var resets: [String: (micros: UInt64, movedTo: String?, exe: String?)] = [:]
        while query.next() {
            guard let id = query.field("DESKGATE_LOG_ID") else { continue }
            let messageID = query.field("MESSAGE_ID")
            if messageID == JournalMirror.resetMessageID {
                if id == logID {
                    history.currentReset = query.realtimeMicros
                } else {
                    resets[id] = (query.realtimeMicros, query.field("DESKGATE_MOVED_TO"), query.field("_EXE"))
                }
                continue
            }
            guard let seq = query.seq else { continue }
            if id == logID {
                currentStarted = true
                let exe = query.field("_EXE") ?? "unknown"
                if messageID == JournalMirror.recordMessageID {
                    history.records.append((seq, query.field("DESKGATE_HASH").flatMap(CompactHash.init(hex:))))
                    history.writers.insert(exe)
                } else if query.field("DESKGATE_CHECKPOINT") == "1", let hash = query.field("DESKGATE_HASH") {
                    history.checkpoints.append(
                        JournalCheckpoint(
                            seq: seq, hash: hash, realtimeMicros: query.realtimeMicros, exe: exe,
                            reason: query.field("DESKGATE_CHECKPOINT_REASON")))
                    history.writers.insert(exe)
                }
            } else if !currentStarted, let hash = query.field("DESKGATE_HASH") {
                before[id] = JournalLogSummary(logID: id, lastSeq: seq, lastHash: hash, lastMicros: query.realtimeMicros)
                lastBefore = id
            }
        }
        if let lastBefore, var summary = before[lastBefore] {
            if let reset = resets[lastBefore] {
                summary.resetMicros = reset.micros
                summary.movedTo = reset.movedTo
                summary.resetBy = reset.exe
            }
            history.predecessor = summary
        }
        return history
    }
}
