import Glibc
import JSONRPC

/// Where `verify --journal` looks: the log's id (nil when the directory holds no log), the audit
/// directory's real path and the uid whose processes wrote for it (journald's trusted `_UID`).
struct JournalScope: Sendable {
    let logID: String?
    let directory: String
    let uid: uid_t

    /// For the log in `directory` as it is on disk now (the CLI, no daemon needed).
    static func of(directory: String) -> JournalScope {
        let logID = try? AuditLog.logID(directory: directory)
        let real = POSIXFile.realPath(directory)
            ?? POSIXFile.realPath(POSIXFile.parentDirectory(of: directory)).map { $0 + "/" + POSIXFile.lastComponent(of: directory) }
            ?? directory
        var st = stat()
        let owner = stat(directory, &st) == 0 || stat(POSIXFile.parentDirectory(of: directory), &st) == 0 ? st.st_uid : geteuid()
        return JournalScope(logID: logID, directory: real, uid: owner)
    }
}

/// Chain verification for a running log (durable limits) or a directory on its own (the CLI).
public enum AuditVerifier {
    /// Verifies the log in `directory` without a running writer. An unterminated last line is
    /// reported in `reason` but is not a break (it may be a write in progress, or a torn tail the
    /// daemon will quarantine at its next start). With `journal`, also compares every record and
    /// checkpoint the journal holds for this log, and tells a fresh install, a reset and a deleted
    /// log apart by the logs the journal knows for this directory (``JournalVerification``).
    public static func verify(directory: String, journal: Bool) throws(AuditError) -> AuditVerification {
        do {
            guard journal else {
                return try verify(directory: directory, segments: nil, limits: [:], journal: nil, tolerateTornTail: true)
            }
            let scope = JournalScope.of(directory: directory)
            guard scope.logID != nil else { return try verifyMissing(directory: directory, scope: scope) }
            return try verify(directory: directory, segments: nil, limits: [:], journal: scope, tolerateTornTail: true)
        } catch let error as AuditError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// No log in the directory: what the journal knows decides between "never was one" (the
    /// error as before), a reset, and a deletion.
    private static func verifyMissing(directory: String, scope: JournalScope) throws -> AuditVerification {
        let history = try AuditJournalReader.history(logID: nil, directory: scope.directory, uid: scope.uid)
        guard let previous = history.predecessor else {
            _ = try AuditLog.logID(directory: directory)  // throws: no key, no log, and the journal knows none
            throw AuditError.unavailable("no audit log in \(directory)")
        }
        // Segments without their key: the key alone was deleted (the next start begins a new log).
        let keyOnly = !((try? SegmentInfo.list(in: directory)) ?? []).isEmpty
        var journal = JournalVerification(ok: true, logID: "", checkpoints: 0, problems: [], writers: [])
        journal.previousLog = previous
        if previous.resetMicros != nil {
            journal.history = "reset"
        } else {
            journal.history = "deleted"
            journal.ok = false
            journal.problems.append(
                "there is no audit log in \(scope.directory), but the journal holds log \(previous.logID) of it (last seq "
                    + "\(previous.lastSeq)) and no reset: the audit \(keyOnly ? "key" : "directory") was deleted")
        }
        var result = AuditVerification(ok: journal.ok, records: 0)
        result.reason = keyOnly ? "the audit key in \(scope.directory) is missing" : "no audit log in \(scope.directory)"
        result.journal = journal
        return result
    }

    static func verify(
        directory: String, segments: [SegmentInfo]?, limits: [String: Int], journal scope: JournalScope?,
        tolerateTornTail: Bool = false
    ) throws -> AuditVerification {
        var history: JournalHistory?
        if let scope { history = try AuditJournalReader.history(logID: scope.logID, directory: scope.directory, uid: scope.uid) }
        var records = RecordComparison(history?.records ?? [])
        let scan = try ChainScan.run(
            directory: directory, segments: segments, limits: limits, findTornTail: tolerateTornTail,
            wanted: Set((history?.checkpoints ?? []).map(\.seq)),
            visit: history == nil ? nil : { line in
                records.visit(seq: line.seq, hash: line.hash)
                return true
            })
        var result = AuditVerification(
            ok: scan.ok, records: scan.records, firstBadSeq: scan.firstBadSeq, reason: scan.reason, lastSeq: scan.tail?.seq)
        if scan.ok, let first = scan.breakRecords.first {
            // The chain is whole, but the log itself says records were lost (found at a start).
            result.ok = false
            result.firstBadSeq = scan.breakRecords.map(\.firstBadSeq).min()
            result.reason = "the log records an integrity break at seq \(first.seq): \(first.reason)"
        }
        if let torn = scan.torn, result.reason == nil {
            result.reason = "unterminated last line (\(torn.bytes.count) bytes): a write in progress or a torn tail"
        }
        if let scope, let history, let logID = scope.logID {
            var journal = compare(history.checkpoints, with: scan, logID: logID)
            journal.problems += records.problems(scan: scan)
            journal.records = history.records.count
            journal.writers = Array(history.writers).sorted()
            classify(&journal, history: history, scope: scope)
            journal.ok = journal.problems.isEmpty
            result.journal = journal
            result.ok = result.ok && journal.ok
        }
        return result
    }

    /// Fresh install, reset or deletion: by the log this directory held before the current one.
    static func classify(_ journal: inout JournalVerification, history: JournalHistory, scope: JournalScope) {
        journal.previousLog = history.predecessor
        if let reset = history.currentReset {
            journal.problems.append(
                "the journal records a reset of this log at \(RFC3339.format(micros: Int64(clamping: reset))), yet it is in use: "
                    + "a retired log was put back")
        }
        guard let previous = history.predecessor else {
            journal.history = "fresh"
            return
        }
        if previous.resetMicros != nil {
            journal.history = "reset"
        } else {
            journal.history = "deleted"
            journal.problems.append(
                "the journal holds log \(previous.logID) of \(scope.directory) (last seq \(previous.lastSeq), "
                    + "\(RFC3339.format(micros: Int64(clamping: previous.lastMicros)))) and no reset of it: the audit directory or its "
                    + "key was deleted and log \(journal.logID) started in its place")
        }
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

/// The local chain against every record the journal holds for the log, merged in seq order
/// (the journal's records sorted once; the local ones arrive in order from the chain scan), so a
/// cut or rewrite anywhere is found, not only at a checkpoint.
struct RecordComparison {
    private let journal: [(seq: Int64, hash: CompactHash?)]
    private var index = 0
    /// Journal records before this index precede the local log's first record (pruned).
    private var startIndex: Int?
    private var differing = SeqRanges()
    private var missingInside = SeqRanges()
    private var lastLocal: Int64 = 0

    init(_ records: [(seq: Int64, hash: CompactHash?)]) {
        journal = records.enumerated().sorted { ($0.element.seq, $0.offset) < ($1.element.seq, $1.offset) }.map(\.element)
    }

    mutating func visit(seq: Int64, hash: String) {
        if startIndex == nil {
            while index < journal.count, journal[index].seq < seq { index += 1 }
            startIndex = index
        } else {
            while index < journal.count, journal[index].seq < seq {
                missingInside.add(journal[index].seq)
                index += 1
            }
        }
        let local = CompactHash(hex: hash)
        while index < journal.count, journal[index].seq == seq {
            if journal[index].hash != local { differing.add(seq) }
            index += 1
        }
        lastLocal = seq
    }

    func problems(scan: ChainScan) -> [String] {
        var problems: [String] = []
        var beyond = SeqRanges()
        for record in journal[(startIndex == nil ? 0 : index)...] { beyond.add(record.seq) }
        if !beyond.isEmpty {
            problems.append(
                "records \(beyond) are in the journal but not in the local log, which ends at seq \(lastLocal): "
                    + "its tail was cut (\(beyond.count) records)")
        }
        if !differing.isEmpty {
            problems.append("records \(differing) differ from their journal copies: the local log was rewritten, or cut and written on")
        }
        if !missingInside.isEmpty {
            problems.append("records \(missingInside) are in the journal but missing inside the local log")
        }
        // Pruned records can still be checked where a pruned record names their hash.
        for record in journal[..<(startIndex ?? 0)] {
            if let anchor = scan.pruned[record.seq], CompactHash(hex: anchor) != record.hash {
                problems.append("record \(record.seq) differs from the hash its pruned record keeps")
            }
        }
        return problems
    }
}

/// Seqs collected as ascending ranges (`221–250, 300`), each seq counted once.
struct SeqRanges: CustomStringConvertible {
    private var ranges: [ClosedRange<Int64>] = []
    private(set) var count = 0

    var isEmpty: Bool { ranges.isEmpty }

    /// `seq` must not be below the last one added (callers add in ascending order).
    mutating func add(_ seq: Int64) {
        if let last = ranges.last {
            if last.contains(seq) { return }
            if seq == last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...seq
                count += 1
                return
            }
        }
        ranges.append(seq...seq)
        count += 1
    }

    var description: String {
        let shown = ranges.prefix(10).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)–\($0.upperBound)" }
        return shown.joined(separator: ", ") + (ranges.count > 10 ? " and \(ranges.count - 10) more ranges" : "")
    }
}

/// Filtered reads for `audit.query`.
enum AuditReader {
    static func query(directory: String, segments: [SegmentInfo], filter: AuditFilter) throws -> [JSONValue] {
        var out: [JSONValue] = []
        // With a task filter: the audit ids of the requests the task allowed, so that their
        // outcome records (which carry no decision) are found too.
        var taskRequests: Set<String> = []
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
                guard let record = try? JSONParser.parse(bytes[start..<end]), matches(record, filter, taskRequests: &taskRequests)
                else { continue }
                out.append(record)
                if out.count >= filter.limit { return out }
            }
        }
        return out
    }

    static func matches(_ record: JSONValue, _ filter: AuditFilter) -> Bool {
        var none: Set<String> = []
        return matches(record, filter, taskRequests: &none)
    }

    static func matches(_ record: JSONValue, _ filter: AuditFilter, taskRequests: inout Set<String>) -> Bool {
        if let task = filter.task {
            let auditID = record["request_id"]?.stringValue
            if record["decision"]?["task"]?.stringValue == task {
                if let auditID { taskRequests.insert(auditID) }
            } else if let auditID, taskRequests.contains(auditID) {
                // the outcome of a request the task allowed
            } else if record["details"]?["task_id"]?.stringValue != task, record["details"]?["task"]?["task_id"]?.stringValue != task {
                return false
            }
        }
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
