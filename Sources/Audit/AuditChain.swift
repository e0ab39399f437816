import Crypto
import JSONRPC

/// Sealing and checking single records: `hash` is the SHA-256 (hex) of the canonical record
/// (sorted keys, compact UTF-8) without `hash`; `prev` is the previous record's hash, so the chain
/// is h_i = SHA-256(canon(e_i ∪ {prev: h_{i-1}})).
enum AuditChain {
    /// `prev` of the very first record.
    static let genesis = String(repeating: "0", count: 64)

    struct Sealed {
        let line: [UInt8]
        let hash: String
    }

    static func seal(_ body: JSONObject, seq: Int64, time: String, prev: String) -> Sealed {
        var record = body
        record["seq"] = .int(seq)
        record["time"] = .string(time)
        record["prev"] = .string(prev)
        // Serialise each top-level member once; the hashed form and the stored line (the same
        // members plus "hash" in its sorted place) are both assembled from these pieces.
        let members = record.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(members.count)
        for member in members {
            var writer = JSONWriter(sortedKeys: true, capacity: 64)
            writer.writeString(member.key)
            writer.bytes.append(UInt8(ascii: ":"))
            writer.write(member.value)
            pieces.append(writer.bytes)
        }
        var canonical: [UInt8] = [UInt8(ascii: "{")]
        for (i, piece) in pieces.enumerated() {
            if i > 0 { canonical.append(UInt8(ascii: ",")) }
            canonical.append(contentsOf: piece)
        }
        canonical.append(UInt8(ascii: "}"))
        let hash = SHA256.hash(data: canonical).hexString
        let hashPiece = Array("\"hash\":\"\(hash)\"".utf8)
        let insertAt = members.firstIndex { !$0.key.utf8.lexicographicallyPrecedes("hash".utf8) } ?? members.count
        pieces.insert(hashPiece, at: insertAt)
        var line: [UInt8] = [UInt8(ascii: "{")]
        line.reserveCapacity(canonical.count + 80)
        for (i, piece) in pieces.enumerated() {
            if i > 0 { line.append(UInt8(ascii: ",")) }
            line.append(contentsOf: piece)
        }
        line.append(UInt8(ascii: "}"))
        line.append(0x0A)
        return Sealed(line: line, hash: hash)
    }

    /// A line that parsed and whose hash matches its content.
    struct CheckedLine {
        let seq: Int64
        let prev: String
        let hash: String
        let record: JSONObject
    }

    enum LineProblem: Error {
        case unparseable(String)
        case badHash(seq: Int64)
    }

    /// Checks one line (without its newline) on its own: JSON object, fields present, hash right.
    static func check(_ line: ArraySlice<UInt8>) -> Result<CheckedLine, LineProblem> {
        let value: JSONValue
        do { value = try JSONParser.parse(line) } catch { return .failure(.unparseable("\(error)")) }
        guard var record = value.objectValue else { return .failure(.unparseable("not an object")) }
        guard let seq = record["seq"]?.intValue, let prev = record["prev"]?.stringValue,
            let hash = record["hash"]?.stringValue, record["kind"]?.stringValue != nil
        else { return .failure(.unparseable("missing seq, prev, hash or kind")) }
        record["hash"] = nil
        let computed = SHA256.hash(data: JSONWriter.bytes(.object(record), sortedKeys: true)).hexString
        guard computed == hash else { return .failure(.badHash(seq: seq)) }
        record["hash"] = .string(hash)
        return .success(CheckedLine(seq: seq, prev: prev, hash: hash, record: record))
    }
}

/// One segment file: `audit-<first seq, 20 digits>.jsonl`.
struct SegmentInfo: Sendable, Equatable {
    let name: String
    let firstSeq: Int64
    var bytes: Int
    var lastSeq: Int64?
    var lastHash: String?
    /// Time of the newest record, microseconds since the epoch.
    var lastMicros: Int64?
    /// Time of the oldest record (segments also rotate by age, so retention can act on them).
    var firstMicros: Int64?

    static let prefix = "audit-"
    static let suffix = ".jsonl"

    static func name(firstSeq: Int64) -> String {
        let digits = String(firstSeq)
        return prefix + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    static func parse(name: String) -> Int64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let middle = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard middle.count == 20, middle.allSatisfy(\.isASCII) else { return nil }
        return Int64(middle)
    }

    /// Segment files in `directory`, oldest first.
    static func list(in directory: String) throws -> [SegmentInfo] {
        try POSIXFile.list(directory)
            .compactMap { name in parse(name: name).map { SegmentInfo(name: name, firstSeq: $0, bytes: 0) } }
            .sorted { $0.firstSeq < $1.firstSeq }
    }
}

/// Reads every segment in order and checks the chain: each line's hash, seq gapless, prev equal to
/// the previous hash, and the start anchored (seq 1 with the genesis prev, or a later `pruned`
/// record naming the hash the first remaining record follows).
struct ChainScan {
    var segments: [SegmentInfo] = []
    var records = 0
    var firstBadSeq: Int64?
    var reason: String?
    /// The last line that is well formed on its own: the tail new records chain to.
    var tail: (seq: Int64, hash: String)?
    /// Incomplete bytes at the end of the last segment (crash mid-write), when asked to look.
    var torn: (segment: Int, offset: Int, bytes: [UInt8])?
    /// Decisions with no outcome yet, by request id, in seq order.
    var openDecisions: [(seq: Int64, auditID: String, record: JSONObject)] = []
    /// `first_bad_seq` of `integrity_break` records already written for breaks in the chain.
    var recordedBreaks: Set<Int64> = []
    /// Every `integrity_break` record in the log (whatever its cause), in order: the log says
    /// records were lost or altered, so it no longer verifies (until pruned, or reset).
    var breakRecords: [(seq: Int64, firstBadSeq: Int64, reason: String)] = []
    /// Journal tails (`journal_last_seq:journal_last_hash`) already recorded as cut off.
    var recordedCuts: Set<String> = []
    /// `previous_log_id` named by `log_started` or `integrity_break` records.
    var previousLogIDs: Set<String> = []
    /// Hashes for the seqs the caller asked about (journal checkpoints).
    var hashes: [Int64: String] = [:]
    /// `pruned` records: through_seq → last pruned hash.
    var pruned: [Int64: String] = [:]
    var first: (seq: Int64, prev: String)?

    var ok: Bool { firstBadSeq == nil }

    /// - Parameters:
    ///   - limits: bytes to read per segment name (the durable size while the log is running).
    ///   - findTornTail: treat an unterminated last line of the last segment as torn, not as a break.
    ///   - wanted: seqs whose hashes to collect.
    ///   - visit: called for every well-formed record, in order; return false to stop reading.
    static func run(
        directory: String, segments listed: [SegmentInfo]? = nil, limits: [String: Int] = [:], findTornTail: Bool = false,
        wanted: Set<Int64> = [], visit: ((AuditChain.CheckedLine) -> Bool)? = nil
    ) throws -> ChainScan {
        var scan = ChainScan()
        var segments = try listed ?? SegmentInfo.list(in: directory)
        var openIndex: [String: Int] = [:]
        var chainGood = true
        var previous: (seq: Int64, hash: String)?

        func markBad(_ seq: Int64, _ why: String) {
            guard chainGood else { return }
            chainGood = false
            scan.firstBadSeq = seq
            scan.reason = why
        }

        segmentLoop: for index in segments.indices {
            let path = directory + "/" + segments[index].name
            let bytes = try POSIXFile.read(path, limit: limits[segments[index].name])
            segments[index].bytes = bytes.count
            var start = 0
            let isLast = index == segments.count - 1
            while start < bytes.count {
                let newline = bytes[start...].firstIndex(of: 0x0A)
                guard let end = newline else {
                    // Unterminated final piece.
                    if isLast && findTornTail {
                        scan.torn = (index, start, Array(bytes[start...]))
                        segments[index].bytes = start
                    } else {
                        markBad((previous?.seq ?? segments[index].firstSeq - 1) + 1, "unterminated line in \(segments[index].name)")
                        scan.records += 1
                    }
                    break
                }
                scan.records += 1
                let expected = (previous?.seq ?? segments[index].firstSeq - 1) + 1
                switch AuditChain.check(bytes[start..<end]) {
                case .failure(.unparseable(let why)):
                    markBad(expected, "unreadable record in \(segments[index].name) at byte \(start): \(why)")
                case .failure(.badHash(let seq)):
                    markBad(expected, "record \(seq) does not match its hash")
                case .success(let line):
                    if let p = previous {
                        if line.seq != p.seq + 1 {
                            markBad(expected, "expected seq \(expected), found \(line.seq)")
                        } else if line.prev != p.hash {
                            markBad(expected, "record \(line.seq) does not follow record \(p.seq)")
                        }
                    } else {
                        scan.first = (line.seq, line.prev)
                    }
                    previous = (line.seq, line.hash)
                    scan.tail = (line.seq, line.hash)
                    segments[index].lastSeq = line.seq
                    segments[index].lastHash = line.hash
                    if let t = line.record["time"]?.stringValue {
                        segments[index].lastMicros = RFC3339.parse(t)
                        if segments[index].firstMicros == nil { segments[index].firstMicros = segments[index].lastMicros }
                    }
                    if wanted.contains(line.seq) { scan.hashes[line.seq] = line.hash }
                    scan.note(line, openIndex: &openIndex)
                    if let visit, !visit(line) { break segmentLoop }
                }
                start = end + 1
            }
        }
        // The start must be anchored: genesis, or a pruned record vouching for the first prev.
        if let first = scan.first {
            let anchored =
                first.seq == 1 ? first.prev == AuditChain.genesis : scan.pruned[first.seq - 1] == first.prev
            if !anchored {
                scan.firstBadSeq = first.seq
                scan.reason = first.seq == 1
                    ? "record 1 does not start the chain"
                    : "records before \(first.seq) are missing and no pruned record accounts for them"
            }
        }
        scan.openDecisions = scan.openDecisions.filter { openIndex[$0.auditID] != nil && openIndex[$0.auditID] == Int($0.seq) }
        scan.segments = segments
        return scan
    }

    private mutating func note(_ line: AuditChain.CheckedLine, openIndex: inout [String: Int]) {
        switch line.record["kind"]?.stringValue {
        case "decision":
            if let id = line.record["request_id"]?.stringValue {
                openIndex[id] = Int(line.seq)
                openDecisions.append((line.seq, id, line.record))
                if openDecisions.count > 20000 {
                    openDecisions.removeAll { openIndex[$0.auditID] == nil }
                }
            }
        case "outcome":
            if let id = line.record["request_id"]?.stringValue { openIndex[id] = nil }
        case "integrity_break":
            let details = line.record["details"]
            let cause = details?["cause"]?.stringValue ?? "chain"
            let firstBad = details?["first_bad_seq"]?.intValue ?? line.seq
            if cause == "chain" { recordedBreaks.insert(firstBad) }
            if cause == "tail_cut", let seq = details?["journal_last_seq"]?.intValue,
                let hash = details?["journal_last_hash"]?.stringValue
            {
                recordedCuts.insert("\(seq):\(hash)")
            }
            if let previous = details?["previous_log_id"]?.stringValue { previousLogIDs.insert(previous) }
            breakRecords.append((line.seq, firstBad, details?["reason"]?.stringValue ?? cause))
        case "log_started":
            if let previous = line.record["details"]?["previous_log_id"]?.stringValue { previousLogIDs.insert(previous) }
        case "pruned":
            if let through = line.record["details"]?["through_seq"]?.intValue,
                let hash = line.record["details"]?["last_pruned_hash"]?.stringValue
            {
                pruned[through] = hash
            }
        default: break
        }
    }
}
