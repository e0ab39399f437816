import CSystemd
import Dispatch
import Glibc
import JSONRPC

/// Mirrors records and checkpoints to the systemd journal through libsystemd, on its own serial
/// queue after the record is durable locally (the journal is a copy, not part of the write-ahead
/// path, and a slow journald must not stall appends).
final class JournalMirror: Sendable {
    static let socketPath = "/run/systemd/journal/socket"
    /// Stable MESSAGE_IDs (journalctl MESSAGE_ID=… finds every deskgate audit entry of a type).
    static let recordMessageID = "8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b51"
    static let checkpointMessageID = "8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b52"

    let logID: String
    private let queue = DispatchQueue(label: "deskgate.audit.journal")

    init(logID: String) { self.logID = logID }

    static var present: Bool { POSIXFile.exists(socketPath) }

    struct Mirrored: Sendable {
        let seq: Int64
        let hash: String
        let kind: String
        let method: String?
        let decision: String?
        let clientExe: String?
        let requestID: String?
        let line: [UInt8]
    }

    static func mirrored(_ record: JSONObject, seq: Int64, hash: String, line: [UInt8]) -> Mirrored {
        Mirrored(
            seq: seq, hash: hash, kind: record["kind"]?.stringValue ?? "",
            method: record["method"]?.stringValue, decision: record["decision"]?["effect"]?.stringValue,
            clientExe: record["client"]?["exe"]?.stringValue, requestID: record["request_id"]?.stringValue,
            line: line.last == 0x0A ? Array(line.dropLast()) : line)
    }

    func mirror(_ records: [Mirrored]) {
        let logID = self.logID
        queue.async {
            for r in records {
                var message = "deskgate audit seq=\(r.seq) \(r.kind)"
                if let m = r.method { message += " method=\(m)" }
                if let d = r.decision { message += " decision=\(d)" }
                if let e = r.clientExe { message += " exe=\(e)" }
                var fields = [
                    "MESSAGE=" + message, "MESSAGE_ID=" + Self.recordMessageID, "PRIORITY=6",
                    "SYSLOG_IDENTIFIER=deskgated", "DESKGATE_LOG_ID=" + logID, "DESKGATE_SEQ=\(r.seq)",
                    "DESKGATE_HASH=" + r.hash, "DESKGATE_KIND=" + r.kind,
                ]
                if let m = r.method { fields.append("DESKGATE_METHOD=" + m) }
                if let d = r.decision { fields.append("DESKGATE_DECISION=" + d) }
                if let e = r.clientExe { fields.append("DESKGATE_CLIENT_EXE=" + e) }
                if let id = r.requestID { fields.append("DESKGATE_REQUEST_ID=" + id) }
                Self.send(fields.map { Array($0.utf8) } + [Array("DESKGATE_RECORD=".utf8) + r.line])
            }
        }
    }

    func checkpoint(seq: Int64, hash: String, segment: String, reason: String) {
        let logID = self.logID
        queue.async {
            Self.send(
                [
                    "MESSAGE=deskgate audit checkpoint seq=\(seq) hash=\(hash) (\(reason))",
                    "MESSAGE_ID=" + Self.checkpointMessageID, "PRIORITY=6", "SYSLOG_IDENTIFIER=deskgated",
                    "DESKGATE_CHECKPOINT=1", "DESKGATE_LOG_ID=" + logID, "DESKGATE_SEQ=\(seq)", "DESKGATE_HASH=" + hash,
                    "DESKGATE_SEGMENT=" + segment, "DESKGATE_CHECKPOINT_REASON=" + reason,
                ].map { Array($0.utf8) })
        }
    }

    /// Waits until everything queued has been handed to journald.
    func flush() { queue.sync {} }

    /// One journal entry; fields are `NAME=value` byte strings (values may hold any bytes).
    private static func send(_ fields: [[UInt8]]) {
        // Keep every field's storage alive while the iovecs point into it.
        let storage = fields.map { field -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(field.count, 1), alignment: 1)
            buffer.copyBytes(from: field)
            return buffer
        }
        defer { storage.forEach { $0.deallocate() } }
        var iov = zip(storage, fields).map { iovec(iov_base: $0.0.baseAddress, iov_len: $0.1.count) }
        _ = iov.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
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
}

public enum AuditJournalReader {
    /// Checkpoints of log `logID` in journal order. Throws `AuditError.unavailable` if the journal
    /// cannot be opened.
    public static func checkpoints(logID: String) throws(AuditError) -> [JournalCheckpoint] {
        var journal: OpaquePointer?
        let rc = sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY))
        guard rc >= 0, let journal else {
            throw .unavailable("cannot open the journal: \(String(cString: strerror(-rc)))")
        }
        defer { sd_journal_close(journal) }
        for match in ["DESKGATE_CHECKPOINT=1", "DESKGATE_LOG_ID=" + logID] {
            let r = match.withCString { sd_journal_add_match(journal, $0, 0) }
            if r < 0 { throw .unavailable("journal match failed: \(String(cString: strerror(-r)))") }
        }
        func field(_ name: String) -> String? {
            var data: UnsafeRawPointer?
            var length = 0
            guard sd_journal_get_data(journal, name, &data, &length) >= 0, let data else { return nil }
            let bytes = UnsafeRawBufferPointer(start: data, count: length)
            let prefix = name.utf8.count + 1
            guard length >= prefix else { return nil }
            return String(decoding: bytes[prefix...], as: UTF8.self)
        }
        var result: [JournalCheckpoint] = []
        guard sd_journal_seek_head(journal) >= 0 else { return [] }
        while sd_journal_next(journal) > 0 {
            guard let seqText = field("DESKGATE_SEQ"), let seq = Int64(seqText), let hash = field("DESKGATE_HASH") else {
                continue
            }
            var usec: UInt64 = 0
            _ = sd_journal_get_realtime_usec(journal, &usec)
            result.append(
                JournalCheckpoint(
                    seq: seq, hash: hash, realtimeMicros: usec, exe: field("_EXE"),
                    reason: field("DESKGATE_CHECKPOINT_REASON")))
        }
        return result
    }
}
