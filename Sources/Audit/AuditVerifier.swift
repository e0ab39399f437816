import Glibc
import JSONRPC

/// Chain verification for a running log (durable limits) or a directory on its own (the CLI).
public enum AuditVerifier {
    /// Verifies the log in `directory` without a running writer. An unterminated last line is
    /// reported in `reason` but is not a break (it may be a write in progress, or a torn tail the
    /// daemon will quarantine at its next start). With `journal`, also compares the journal's
    /// checkpoints for this log.
    public static func verify(directory: String, journal: Bool) throws(AuditError) -> AuditVerification {
        let logID = journal ? try AuditLog.logID(directory: directory) : nil
        do {
            return try verify(directory: directory, segments: nil, limits: [:], journalLogID: logID, tolerateTornTail: true)
        } catch let error as AuditError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    static func verify(
        directory: String, segments: [SegmentInfo]?, limits: [String: Int], journalLogID: String?,
        tolerateTornTail: Bool = false
    ) throws -> AuditVerification {
        var checkpoints: [JournalCheckpoint] = []
        if let journalLogID { checkpoints = try AuditJournalReader.checkpoints(logID: journalLogID) }
        let scan = try ChainScan.run(
            directory: directory, segments: segments, limits: limits, findTornTail: tolerateTornTail,
            wanted: Set(checkpoints.map(\.seq)))
        var result = AuditVerification(
            ok: scan.ok, records: scan.records, firstBadSeq: scan.firstBadSeq, reason: scan.reason, lastSeq: scan.tail?.seq)
        if let torn = scan.torn, result.reason == nil {
            result.reason = "unterminated last line (\(torn.bytes.count) bytes): a write in progress or a torn tail"
        }
        if let journalLogID {
            let journal = compare(checkpoints, with: scan, logID: journalLogID)
            result.journal = journal
            result.ok = result.ok && journal.ok
        }
        return result
    }

    /// Every checkpoint must name a record the local chain holds with the same hash, in order.
    static func compare(_ checkpoints: [JournalCheckpoint], with scan: ChainScan, logID: String) -> JournalVerification {
        var problems: [String] = []
        let localLast = scan.tail?.seq ?? 0
        let localFirst = scan.first?.seq ?? localLast + 1
        var highest: Int64 = 0
        for checkpoint in checkpoints {
            if checkpoint.seq < highest {
                problems.append(
                    "checkpoint seq \(checkpoint.seq) was written after checkpoint seq \(highest): out of order "
                        + "(the log was cut back and rewritten)")
            }
            highest = max(highest, checkpoint.seq)
            if checkpoint.seq > localLast {
                problems.append(
                    "checkpoint seq \(checkpoint.seq) is beyond the local log's last record \(localLast): the local log was truncated")
            } else if checkpoint.seq < localFirst {
                if let anchor = scan.pruned[checkpoint.seq], anchor != checkpoint.hash {
                    problems.append("checkpoint seq \(checkpoint.seq) disagrees with the pruned record's hash")
                }
            } else if let local = scan.hashes[checkpoint.seq] {
                if local != checkpoint.hash {
                    problems.append("record \(checkpoint.seq) differs from its journal checkpoint: the local log was rewritten")
                }
            } else {
                problems.append("record \(checkpoint.seq) named by a journal checkpoint is missing locally")
            }
        }
        if checkpoints.isEmpty, localLast > 0 {
            problems.append("no checkpoints for log \(logID) in the journal")
        }
        let writers = Array(Set(checkpoints.map { $0.exe ?? "unknown" })).sorted()
        return JournalVerification(
            ok: problems.isEmpty, logID: logID, checkpoints: checkpoints.count, problems: problems, writers: writers)
    }
}

/// Filtered reads for `audit.query`.
enum AuditReader {
    static func query(directory: String, segments: [SegmentInfo], filter: AuditFilter) throws -> [JSONValue] {
        var out: [JSONValue] = []
        for (index, segment) in segments.enumerated() {
            // Skip segments that end before since_seq.
            if let since = filter.sinceSeq, index + 1 < segments.count, segments[index + 1].firstSeq <= since { continue }
            let bytes: [UInt8]
            do { bytes = try POSIXFile.read(directory + "/" + segment.name, limit: segment.bytes) } catch let failure
                as POSIXFailure where failure.code == ENOENT  // pruned meanwhile
            {
                continue
            }
            var start = 0
            while start < bytes.count, let end = bytes[start...].firstIndex(of: 0x0A) {
                defer { start = end + 1 }
                guard let record = try? JSONParser.parse(bytes[start..<end]), matches(record, filter) else { continue }
                out.append(record)
                if out.count >= filter.limit { return out }
            }
        }
        return out
    }

    static func matches(_ record: JSONValue, _ filter: AuditFilter) -> Bool {
        if let since = filter.sinceSeq, (record["seq"]?.intValue ?? -1) < since { return false }
        if let exe = filter.clientExe, record["client"]?["exe"]?.stringValue != exe { return false }
        if let method = filter.method, record["method"]?.stringValue != method { return false }
        if let decision = filter.decision, record["decision"]?["effect"]?.stringValue != decision { return false }
        if let since = filter.sinceMicros {
            guard let time = record["time"]?.stringValue, let micros = RFC3339.parse(time), micros >= since else {
                return false
            }
        }
        return true
    }
}
