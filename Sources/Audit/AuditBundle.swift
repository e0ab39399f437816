import Crypto
import Glibc
public import JSONRPC

/// What the journal says about a stretch of the log: the checkpoints the daemon wrote there and
/// the hashes of the records it mirrored there (both as journald stored them).
public struct AuditJournalEvidence: Sendable, Equatable {
    /// One record's seq and hash as the journal holds it.
    public struct RecordCopy: Sendable, Equatable {
        public let seq: Int64
        public let hash: String

        public init(seq: Int64, hash: String) {
            self.seq = seq
            self.hash = hash
        }
    }

    public var checkpoints: [JournalCheckpoint]
    public var records: [RecordCopy]
    /// `_EXE` of the entries (journald's trusted field): who wrote them.
    public var writers: [String]

    public init(checkpoints: [JournalCheckpoint], records: [RecordCopy], writers: [String]) {
        self.checkpoints = checkpoints
        self.records = records
        self.writers = writers
    }

    /// Only what names a seq in `range`.
    func within(_ range: ClosedRange<Int64>) -> AuditJournalEvidence {
        AuditJournalEvidence(
            checkpoints: checkpoints.filter { range.contains($0.seq) }, records: records.filter { range.contains($0.seq) },
            writers: writers)
    }

    /// The highest seq any entry names, or nil.
    var highestSeq: Int64? { (checkpoints.map(\.seq) + records.map(\.seq)).max() }
}

/// Where ``AuditBundle/export(directory:sinceMicros:untilMicros:journal:extra:nowMicros:)`` takes
/// its journal evidence from.
public enum AuditBundleJournalSource: Sendable {
    /// None: the bundle carries `"journal": null` (its check then needs `--chain-only`).
    case none
    /// The local journal, read the way `deskgate audit verify --journal` reads it (this log's
    /// entries, written by processes of the audit directory's owner).
    case system
    /// Evidence read elsewhere (e.g. from a forwarded journal).
    case given(AuditJournalEvidence)
}

/// A bundle written by ``AuditBundle/export(directory:sinceMicros:untilMicros:journal:extra:nowMicros:)``.
public struct AuditBundleExport: Sendable {
    /// The bundle's bytes (one JSON object, sorted keys), as written to the file.
    public var bytes: [UInt8]
    public var firstSeq: Int64
    public var lastSeq: Int64
    public var records: Int
    public var checkpoints: Int
    public var journalRecords: Int
    /// Things the person exporting should know (no journal evidence, a break in the local chain…).
    public var warnings: [String]

    /// SHA-256 (hex) of ``bytes``: worth writing down somewhere the bundle cannot reach.
    public var sha256: String { SHA256.hash(data: bytes).hexString }

    public var json: JSONValue {
        [
            "first_seq": .int(firstSeq), "last_seq": .int(lastSeq), "records": .int(Int64(records)),
            "checkpoints": .int(Int64(checkpoints)), "journal_records": .int(Int64(journalRecords)),
            "sha256": .string(sha256), "warnings": .array(warnings.map { .string($0) }),
        ]
    }
}

/// The offline check of a bundle (``AuditBundle/verify(_:requireJournal:)``).
public struct AuditBundleVerification: Sendable, Equatable {
    public var ok: Bool
    public var format: String?
    public var logID: String?
    public var records: Int
    public var firstSeq: Int64?
    public var lastSeq: Int64?
    /// The first record that does not verify (altered, missing, not in order, contradicted by the
    /// journal evidence, or not vouched for by it).
    public var firstBadSeq: Int64?
    /// Each a sentence; empty when ``ok``.
    public var problems: [String]
    /// Whether the bundle carries journal evidence at all.
    public var journal = false
    /// Checkpoints and journal record copies that agree with the records.
    public var checkpointsMatched: Int
    public var journalRecordsMatched: Int
    /// The highest seq the journal evidence vouches for (through the chain, every record before it too).
    public var vouchedThrough: Int64?
    /// The newest checkpoint that agrees: the one to look up in an independent copy of the journal.
    public var anchorCheckpoint: (seq: Int64, hash: String)?
    public var writers: [String]
    /// What the check did not prove.
    public var notes: [String]

    public static func == (a: Self, b: Self) -> Bool { a.json == b.json }

    public var json: JSONValue {
        var o = JSONObject()
        o.append("ok", .bool(ok))
        if let format { o.append("format", .string(format)) }
        if let logID { o.append("log_id", .string(logID)) }
        o.append("records", .int(Int64(records)))
        if let firstSeq { o.append("first_seq", .int(firstSeq)) }
        if let lastSeq { o.append("last_seq", .int(lastSeq)) }
        if let firstBadSeq { o.append("first_bad_seq", .int(firstBadSeq)) }
        o.append("problems", .array(problems.map { .string($0) }))
        o.append("journal", .bool(journal))
        o.append("checkpoints_matched", .int(Int64(checkpointsMatched)))
        o.append("journal_records_matched", .int(Int64(journalRecordsMatched)))
        if let vouchedThrough { o.append("vouched_through", .int(vouchedThrough)) }
        if let anchorCheckpoint {
            o.append("anchor_checkpoint", ["seq": .int(anchorCheckpoint.seq), "hash": .string(anchorCheckpoint.hash)])
        }
        o.append("writers", .array(writers.map { .string($0) }))
        o.append("notes", .array(notes.map { .string($0) }))
        return .object(o)
    }
}

/// Self-contained export of a stretch of the audit log for incident response, and its offline
/// check (docs/incident-response.md).
///
/// A bundle is one JSON object (`"format": "deskgate-audit-bundle/1"`) holding the records of a
/// time range exactly as stored (each with its `seq`, `prev` and `hash`), the hash the first one
/// follows, the journal's checkpoints and record copies for those seqs, and whatever the exporter
/// adds (the daemon's build, the policy files' SHA-256). The chain is SHA-256 without a key, so
/// it verifies anywhere; the installation key (`hmac.key`, behind typed values' `hmac` and the
/// log id) never goes into a bundle.
public enum AuditBundle {
    public static let format = "deskgate-audit-bundle/1"
    /// How many records outside the range export holds back after an in-range record, waiting
    /// for another in-range one (a clock stepped back); beyond that the bundle ends there.
    static let maxTrailingGap = 10_000

    // MARK: Export

    /// Reads the log in `directory` (no daemon needed) and builds a bundle of the records from the
    /// first whose time is at or after `sinceMicros` to the last whose time is before
    /// `untilMicros` (no limit when nil), and every record between them (the span is contiguous
    /// even if the clock stepped back). `extra` members are added at the top level (the CLI adds
    /// `daemon`, `exporter` and `policy_files`). Throws if the log cannot be read or no record
    /// falls in the range.
    public static func export(
        directory: String, sinceMicros: Int64, untilMicros: Int64?, journal: AuditBundleJournalSource,
        extra: JSONObject = [:], nowMicros: Int64? = nil
    ) throws(AuditError) -> AuditBundleExport {
        func inRange(_ micros: Int64?) -> Bool {
            guard let micros else { return false }
            return micros >= sinceMicros && untilMicros.map { micros < $0 } ?? true
        }
        let logID = try AuditLog.logID(directory: directory)
        var collected: [JSONObject] = []
        var trailing: [JSONObject] = []
        var closed = false
        // The policy files in effect when the range starts: the newest load of each file, from
        // the last reload before it (a reload loads every file once, so a file seen again starts
        // a new reload).
        var policyAtStart: [JSONValue] = []
        var policyPaths: Set<String> = []
        var logFirst: (seq: Int64, time: String)?
        var logLast: (seq: Int64, time: String)?
        let scan: ChainScan
        do {
            scan = try ChainScan.run(directory: directory, findTornTail: true) { line in
                let time = line.record["time"]?.stringValue ?? ""
                if logFirst == nil { logFirst = (line.seq, time) }
                logLast = (line.seq, time)
                guard !closed else { return true }
                let micros = RFC3339.parse(time)
                if collected.isEmpty {
                    guard inRange(micros) else {
                        let kind = line.record["kind"]?.stringValue
                        if kind == "policy_load" || kind == "policy_error",
                            let path = line.record["details"]?["path"]?.stringValue
                        {
                            if policyPaths.contains(path) {
                                policyAtStart = []
                                policyPaths = []
                            }
                            policyPaths.insert(path)
                            policyAtStart.append(.object(line.record))
                        }
                        return true
                    }
                    collected.append(line.record)
                } else if inRange(micros) {
                    collected += trailing
                    trailing = []
                    collected.append(line.record)
                } else {
                    trailing.append(line.record)
                    if trailing.count > maxTrailingGap {
                        trailing = []
                        closed = true
                    }
                }
                return true
            }
        } catch {
            throw .unavailable("cannot read the audit log in \(directory): \(error)")
        }
        guard let first = collected.first, let last = collected.last, let firstSeq = first["seq"]?.intValue,
            let lastSeq = last["seq"]?.intValue, let prev = first["prev"]?.stringValue
        else {
            let held = logFirst.map { f in
                " (the log holds seq \(f.seq)–\(logLast?.seq ?? f.seq), \(f.time) to \(logLast?.time ?? f.time))"
            } ?? " (the log is empty)"
            let until = untilMicros.map { " and before \(RFC3339.format(micros: $0))" } ?? ""
            throw .unavailable("no audit records at or after \(RFC3339.format(micros: sinceMicros))\(until) in \(directory)\(held)")
        }

        var warnings: [String] = []
        var localChain: JSONObject = ["ok": .bool(scan.ok), "records": .int(Int64(scan.records))]
        if let bad = scan.firstBadSeq {
            localChain.append("first_bad_seq", .int(bad))
            warnings.append(
                "the local chain does not verify from seq \(bad) (\(scan.reason ?? "")); the bundle holds the records that are "
                    + "well formed, and its check will name what is wrong")
        }
        if let reason = scan.reason { localChain.append("reason", .string(reason)) }

        let wanted = (firstSeq - 1)...lastSeq
        var evidence: AuditJournalEvidence?
        switch journal {
        case .none:
            warnings.append("the bundle carries no journal evidence: it verifies only with --chain-only")
        case .given(let given): evidence = given.within(wanted)
        case .system: evidence = try systemEvidence(directory: directory, logID: logID, range: wanted, warnings: &warnings)
        }
        if let evidence, (evidence.highestSeq ?? Int64.min) < lastSeq {
            let from = (evidence.highestSeq ?? firstSeq - 1) + 1
            warnings.append(
                "the journal evidence does not reach records \(from)–\(lastSeq) (not mirrored yet, or the journal lost them): "
                    + "the bundle's check will fail unless it is run with --chain-only; export again later to include them")
        }

        var bundle = extra
        bundle["format"] = .string(format)
        bundle["created"] = .string(RFC3339.format(micros: nowMicros ?? AuditTime.nowMicros()))
        bundle["range"] = [
            "since": .string(RFC3339.format(micros: sinceMicros)), "until": untilMicros.map { .string(RFC3339.format(micros: $0)) } ?? .null,
            "first_seq": .int(firstSeq), "last_seq": .int(lastSeq), "records": .int(Int64(collected.count)),
        ]
        bundle["log"] = [
            "log_id": .string(logID), "directory": .string(POSIXFile.realPath(directory) ?? directory),
            "local_chain": .object(localChain),
        ]
        bundle["previous"] = ["seq": .int(firstSeq - 1), "hash": .string(prev)]
        bundle["records"] = .array(collected.map { .object($0) })
        bundle["policy_at_start"] = .array(policyAtStart)
        bundle["journal"] = evidence.map(json(_:)) ?? .null
        return AuditBundleExport(
            bytes: JSONWriter.bytes(.object(bundle), sortedKeys: true) + [0x0A], firstSeq: firstSeq, lastSeq: lastSeq,
            records: collected.count, checkpoints: evidence?.checkpoints.count ?? 0, journalRecords: evidence?.records.count ?? 0,
            warnings: warnings)
    }

    /// This log's checkpoints and record copies in `range` from the local journal. The mirror
    /// runs behind the log, so the newest records may arrive a moment late: waits up to 3 s for
    /// the journal to reach the range's end (not when it holds nothing of this log at all).
    private static func systemEvidence(directory: String, logID: String, range: ClosedRange<Int64>, warnings: inout [String])
        throws(AuditError) -> AuditJournalEvidence?
    {
        guard JournalMirror.present else {
            warnings.append("no journal is running here: the bundle carries no checkpoints (its check needs --chain-only)")
            return nil
        }
        let scope = JournalScope.of(directory: directory)
        var evidence = AuditJournalEvidence(checkpoints: [], records: [], writers: [])
        for attempt in 0..<30 {
            if attempt > 0 { usleep(100_000) }
            let history = try AuditJournalReader.history(logID: logID, directory: scope.directory, uid: scope.uid)
            evidence = AuditJournalEvidence(
                checkpoints: history.checkpoints,
                records: history.records.compactMap { r in r.hash.map { AuditJournalEvidence.RecordCopy(seq: r.seq, hash: $0.hex) } },
                writers: Array(history.writers).sorted()
            ).within(range)
            if history.records.isEmpty && history.checkpoints.isEmpty { break }
            if (evidence.highestSeq ?? Int64.min) >= range.upperBound { break }
        }
        if evidence.checkpoints.isEmpty && evidence.records.isEmpty {
            warnings.append("the journal holds nothing of log \(logID) for these records")
        }
        return evidence
    }

    static func json(_ evidence: AuditJournalEvidence) -> JSONValue {
        [
            "checkpoints": .array(
                evidence.checkpoints.map { c in
                    var o: JSONObject = [
                        "seq": .int(c.seq), "hash": .string(c.hash),
                        "time": .string(RFC3339.format(micros: Int64(clamping: c.realtimeMicros))),
                    ]
                    if let exe = c.exe { o.append("exe", .string(exe)) }
                    if let reason = c.reason { o.append("reason", .string(reason)) }
                    return .object(o)
                }),
            "records": .array(evidence.records.map { ["seq": .int($0.seq), "hash": .string($0.hash)] }),
            "writers": .array(evidence.writers.map { .string($0) }),
        ]
    }

    /// SHA-256 of the policy files the daemon reads (every `*.toml` in `systemPolicyDirectory`,
    /// then `userPolicyFile`), as they are now: `[{path, layer, sha256}]`, or `missing: true`, or
    /// `error`.
    public static func policyFiles(systemPolicyDirectory: String, userPolicyFile: String) -> JSONValue {
        var out: [JSONValue] = []
        func digest(_ path: String, layer: String) {
            var o: JSONObject = ["path": .string(path), "layer": .string(layer)]
            do {
                o.append("sha256", .string(SHA256.hash(data: try POSIXFile.read(path)).hexString))
            } catch let failure as POSIXFailure where failure.code == ENOENT {
                o.append("missing", true)
            } catch {
                o.append("error", .string("\(error)"))
            }
            out.append(.object(o))
        }
        do {
            for name in try POSIXFile.list(systemPolicyDirectory).sorted() where name.hasSuffix(".toml") {
                digest(systemPolicyDirectory + "/" + name, layer: "admin")
            }
        } catch let failure as POSIXFailure where failure.code == ENOENT {
            out.append(["path": .string(systemPolicyDirectory), "layer": "admin", "missing": true])
        } catch {
            out.append(["path": .string(systemPolicyDirectory), "layer": "admin", "error": .string("\(error)")])
        }
        digest(userPolicyFile, layer: "user")
        return .array(out)
    }

    // MARK: Verification

    /// Checks a bundle with nothing but its bytes: every record's hash, the chain from the hash
    /// the first record follows to the last record (no seq missing, none out of order), that the
    /// header agrees with the records, that every checkpoint and journal record copy in the
    /// bundle agrees with the record of its seq, and (unless `requireJournal` is false) that the
    /// journal evidence vouches for the last record (a record added after the last one the
    /// journal saw would chain correctly, but nothing vouches for it).
    public static func verify(_ bytes: [UInt8], requireJournal: Bool = true) -> AuditBundleVerification {
        var result = AuditBundleVerification(
            ok: false, records: 0, problems: [], checkpointsMatched: 0, journalRecordsMatched: 0, writers: [], notes: [])
        func bad(_ seq: Int64?, _ problem: String) {
            if result.problems.count < 50 { result.problems.append(problem) }
            if let seq { result.firstBadSeq = min(result.firstBadSeq ?? seq, seq) }
        }
        let root: JSONObject
        do {
            guard let object = try JSONParser.parse(bytes, maxDepth: 96).objectValue else {
                bad(nil, "the bundle is not a JSON object")
                return result
            }
            root = object
        } catch {
            bad(nil, "the bundle is not valid JSON: \(error)")
            return result
        }
        result.format = root["format"]?.stringValue
        guard result.format == format else {
            bad(nil, "unknown bundle format \(root["format"].map { JSONWriter.string($0) } ?? "(none)"); expected \(format)")
            return result
        }
        result.logID = root["log"]?["log_id"]?.stringValue
        guard let records = root["records"]?.arrayValue, !records.isEmpty else {
            bad(nil, "the bundle holds no records")
            return result
        }
        let range = root["range"]
        let previousSeq = root["previous"]?["seq"]?.intValue
        let previousHash = root["previous"]?["hash"]?.stringValue

        // The chain.
        var hashes: [Int64: String] = [:]
        var times: [String] = []
        var expected: Int64? = previousSeq.map { $0 + 1 }
        var prev = previousHash
        var chainBroken = false
        for (index, value) in records.enumerated() {
            let claimed = value["seq"]?.intValue
            let place = expected ?? claimed
            switch AuditChain.check(ArraySlice(JSONWriter.bytes(value, sortedKeys: true))) {
            case .failure(.unparseable(let why)):
                chainBroken = true
                bad(place, "entry \(index + 1) of the bundle's records is not an audit record (\(why))")
                if let claimed { expected = claimed + 1 }
                prev = nil
            case .failure(.badHash(let seq)):
                chainBroken = true
                bad(seq, "record \(seq) does not match its hash: it was altered after it was written")
                expected = seq + 1
                prev = value["hash"]?.stringValue
            case .success(let line):
                if result.firstSeq == nil { result.firstSeq = line.seq }
                result.lastSeq = line.seq
                if let exp = expected, line.seq != exp {
                    chainBroken = true
                    if line.seq > exp {
                        let missing = line.seq - 1 == exp ? "record \(exp) is" : "records \(exp)–\(line.seq - 1) are"
                        bad(exp, "\(missing) missing: record \(line.seq) comes after record \(exp - 1)")
                    } else {
                        bad(exp, "expected record \(exp), found record \(line.seq) (records out of order or repeated)")
                    }
                } else if let p = prev, line.prev != p {
                    chainBroken = true
                    bad(line.seq, "record \(line.seq) does not follow record \(line.seq - 1): its prev is not that record's hash")
                } else if prev == nil, index == 0, previousHash == nil {
                    chainBroken = true
                    bad(line.seq, "the bundle does not say which hash record \(line.seq) follows (previous)")
                }
                if line.seq == 1, line.prev != AuditChain.genesis {
                    bad(1, "record 1 does not start the chain")
                }
                hashes[line.seq] = line.hash
                if let time = line.record["time"]?.stringValue { times.append(time) }
                expected = line.seq + 1
                prev = line.hash
            }
        }
        result.records = records.count

        // The header against the records.
        if let previousSeq, let first = result.firstSeq, previousSeq != first - 1 {
            bad(first, "the bundle says its first record follows record \(previousSeq), but it starts with record \(first)")
        }
        if previousSeq == 0, let previousHash, previousHash != AuditChain.genesis {
            bad(1, "record 1 must follow the genesis hash")
        }
        let headerFirst = range?["first_seq"]?.intValue
        let headerLast = range?["last_seq"]?.intValue
        let headerCount = range?["records"]?.intValue
        if let first = result.firstSeq, headerFirst != first {
            bad(min(first, headerFirst ?? first), "the bundle's range starts at record \(headerFirst.map(String.init) ?? "?"), its records at \(first)")
        }
        if let last = result.lastSeq, headerLast != last || headerCount != Int64(records.count) {
            let seq = headerLast.map { last > $0 ? $0 + 1 : last + 1 } ?? last
            bad(
                seq,
                "the bundle's range says records \(headerFirst.map(String.init) ?? "?")–\(headerLast.map(String.init) ?? "?") "
                    + "(\(headerCount.map(String.init) ?? "?")), it holds \(result.firstSeq ?? 0)–\(last) (\(records.count)): "
                    + "records were added or removed")
        }
        if let since = range?["since"]?.stringValue.flatMap(RFC3339.parse) {
            let until = range?["until"]?.stringValue.flatMap(RFC3339.parse)
            for (label, time, seq) in [("first", times.first, result.firstSeq), ("last", times.last, result.lastSeq)] {
                guard let time, let micros = RFC3339.parse(time) else { continue }
                if micros < since || until.map({ micros >= $0 }) == true {
                    bad(seq, "the \(label) record (\(seq.map(String.init) ?? "?"), \(time)) lies outside the bundle's time range")
                }
            }
        }

        // The journal evidence against the records.
        let journal = root["journal"]
        if let journal, !journal.isNull {
            var vouched: Int64?
            var anchor: (seq: Int64, hash: String)?
            func compare(_ entry: JSONValue, what: String) -> Bool {
                guard let seq = entry["seq"]?.intValue, let hash = entry["hash"]?.stringValue else {
                    bad(nil, "a journal \(what) in the bundle lacks its seq or hash")
                    return false
                }
                let local: String?
                if seq == previousSeq {
                    local = previousHash
                } else {
                    local = hashes[seq]
                }
                guard let local else {
                    if let first = result.firstSeq, let last = result.lastSeq, seq >= first, seq <= last {
                        bad(seq, "record \(seq), named by a journal \(what), is missing from the bundle")
                    } else {
                        bad(nil, "journal \(what) \(seq) lies outside the bundle's records")
                    }
                    return false
                }
                guard local == hash else {
                    bad(seq == previousSeq ? (result.firstSeq ?? seq) : seq,
                        seq == previousSeq
                            ? "the hash the first record follows differs from the journal \(what) of record \(seq)"
                            : "record \(seq) differs from its journal \(what): the record was rewritten or the \(what) altered")
                    return false
                }
                vouched = max(vouched ?? seq, seq)
                return true
            }
            for checkpoint in journal["checkpoints"]?.arrayValue ?? [] where compare(checkpoint, what: "checkpoint") {
                result.checkpointsMatched += 1
                if let seq = checkpoint["seq"]?.intValue, seq >= (anchor?.seq ?? Int64.min),
                    let hash = checkpoint["hash"]?.stringValue
                {
                    anchor = (seq, hash)
                }
            }
            for copy in journal["records"]?.arrayValue ?? [] where compare(copy, what: "copy") {
                result.journalRecordsMatched += 1
            }
            result.writers = (journal["writers"]?.arrayValue ?? []).compactMap(\.stringValue)
            result.vouchedThrough = vouched
            result.anchorCheckpoint = anchor
            if let last = result.lastSeq, !chainBroken, (vouched ?? Int64.min) < last {
                let from = max((vouched ?? (result.firstSeq ?? last) - 1) + 1, result.firstSeq ?? last)
                let problem =
                    "\(from == last ? "record \(last) is" : "records \(from)–\(last) are") not vouched for by any journal "
                    + "checkpoint or record copy in the bundle: they could have been added after the fact"
                if requireJournal { bad(from, problem) } else { result.notes.append(problem) }
            }
            result.journal = true
            result.notes.append(
                "the journal evidence is only as trustworthy as the journal it was read from: compare the newest checkpoint with "
                    + "an independent copy (e.g. the fleet's forwarded journal)")
        } else if requireJournal {
            bad(nil, "the bundle carries no journal evidence: only the chain's own consistency can be checked (--chain-only)")
        } else if result.problems.isEmpty {
            result.notes.append("no journal evidence: the chain is consistent, but nothing outside the bundle vouches for it")
        }
        result.notes.append(
            "typed values' hmac cannot be checked without the installation key, which never leaves the machine")
        result.ok = result.problems.isEmpty
        return result
    }
}
