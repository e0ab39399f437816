import Crypto
import Dispatch
import Glibc
public import JSONRPC
public import Logging
import Synchronization

/// The hash-chained, write-ahead audit log.
///
/// One JSON object per line in append-only segments under ``directory``. ``append(_:)`` returns
/// only once the record is on disk; concurrent appends share one `fdatasync` (group commit) on a
/// dedicated serial queue, so the cooperative pool never waits in a system call. When the disk
/// cannot be written every append throws ``AuditError/unavailable(_:)`` (-32007) and later appends
/// retry, so the log recovers when space returns without a gap or a broken chain.
public final class AuditLog: Sendable {
    public let directory: String
    /// Names this log in journal checkpoints (derived from the installation key).
    public let logID: String
    let config: AuditConfig
    let logger: Logger
    private let key: SymmetricKey
    private let writerQueue = DispatchQueue(label: "deskgate.audit.writer")
    private let pending = Mutex(PendingAppends())
    /// The latest retention change not yet taken up by the writer queue (only the last one counts).
    private let retentionUpdate = Mutex<RetentionUpdate?>(nil)
    private let writer: AuditWriter
    private let shared: SharedStateBox
    private let journal: JournalMirror?
    /// The directory's canonical path (what journal entries name).
    private let realDirectory: String
    private let lock: DirectoryLock

    private struct PendingAppends: ~Copyable {
        var items: [(body: JSONObject, continuation: CheckedContinuation<AuditReceipt, any Error>)] = []
        var draining = false
        var closed = false
    }

    private enum RetentionUpdate: Sendable {
        case apply(AuditRetention)
        case hold(String)
    }

    static let keyFileName = "hmac.key"
    static let quarantineDirectory = "quarantine"

    private init(
        config: AuditConfig, logger: Logger, key: SymmetricKey, logID: String, realDirectory: String, lock: DirectoryLock,
        writer: AuditWriter, shared: SharedStateBox, journal: JournalMirror?
    ) {
        self.realDirectory = realDirectory
        self.lock = lock
        self.directory = config.directory
        self.config = config
        self.logger = logger
        self.key = key
        self.logID = logID
        self.writer = writer
        self.shared = shared
        self.journal = journal
    }

    // MARK: Opening and recovery

    /// Opens (creating if needed) the log in `config.directory` and recovers it: verifies the chain,
    /// quarantines a torn last line and writes `recovered`, writes `integrity_break` for a break
    /// elsewhere (and keeps reporting it), closes decisions left without an outcome with
    /// `outcome: "unknown"`, prunes, and writes a journal checkpoint. Blocks (file I/O): call it at
    /// start-up, not from request handlers.
    ///
    /// With a journal, it also compares the log with what the journal holds (two lookups from the
    /// journal's tail, once): a local log that ends before the journal's last record of it (its
    /// tail was cut) gets an `integrity_break` (`cause: tail_cut`) instead of being written on
    /// silently; a log new to the journal whose directory held another log names that log in its
    /// first record: `log_started` after `deskgate audit reset`, else `integrity_break`
    /// (`cause: log_replaced`: the directory or its key was deleted). Without journald it opens
    /// all the same.
    ///
    /// Holds a shared lock on the directory while open (``reset(directory:)`` needs it exclusively).
    /// Throws only if the directory or key cannot be set up; a log that cannot be written right
    /// now still opens, with ``health`` saying so and appends failing with -32007.
    public static func open(config: AuditConfig, logger: Logger) throws(AuditError) -> AuditLog {
        signal(SIGXFSZ, SIG_IGN)
        let directory = config.directory
        let key: SymmetricKey
        let lock: DirectoryLock
        do {
            try POSIXFile.ensurePrivateDirectory(directory)
            lock = try DirectoryLock(directory, exclusive: false)
            key = try loadOrCreateKey(directory: directory)
        } catch let error as AuditError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
        let logID = Self.logID(key: key)
        let realDirectory = POSIXFile.realPath(directory) ?? directory
        let journalOn = config.journal == .auto && JournalMirror.present
        // What the journal last saw of this log, and (for a log it has never seen) of the log
        // this directory held before.
        var journalTail: JournalRecordRef?
        var previousLog: JournalLogSummary?
        if journalOn {
            do {
                (journalTail, previousLog) = try AuditJournalReader.atOpen(logID: logID, directory: realDirectory, uid: geteuid())
            } catch {
                logger.warning("cannot read the journal; the audit log is not compared with it at start-up", metadata: ["error": "\(error)"])
            }
        }
        let scan: ChainScan
        do {
            scan = try ChainScan.run(directory: directory, findTornTail: true, wanted: journalTail.map { [$0.seq] } ?? [])
        } catch {
            throw .unavailable("\(error)")
        }
        let journal: JournalMirror? = journalOn ? JournalMirror(logID: logID, directory: realDirectory) : nil
        let shared = SharedStateBox(
            SharedState(
                health: AuditHealth(
                    writable: true, lastError: nil, firstBadSeq: scan.firstBadSeq, lastSeq: scan.tail?.seq ?? 0,
                    lastHash: scan.tail?.hash ?? AuditChain.genesis, journal: journal != nil, directory: directory, logID: logID,
                    retention: config.deferRetention ? nil : AuditRetention(days: config.retentionDays, maxBytes: config.maxBytes),
                    retentionHeld: config.deferRetention ? "waiting for the policy's [audit] settings" : nil),
                segments: scan.segments))
        let writer = AuditWriter(directory: directory, config: config, logger: logger, journal: journal, shared: shared)
        writer.directoryIdentity = lock.identity
        writer.segments = scan.segments
        writer.durableSize = scan.segments.last?.bytes ?? 0
        if let tail = scan.tail { writer.head = tail }
        writer.loadTail()

        var maintenance: [JSONObject] = []
        if let torn = scan.torn {
            do {
                maintenance.append(try quarantine(torn, segments: scan.segments, directory: directory, logger: logger))
            } catch {
                throw .unavailable("cannot quarantine the torn end of the audit log: \(error)")
            }
        }
        if let bad = scan.firstBadSeq {
            logger.critical(
                "audit log integrity break: the chain does not verify; not repaired",
                metadata: ["first_bad_seq": "\(bad)", "reason": "\(scan.reason ?? "")"])
            if !scan.recordedBreaks.contains(bad) {
                var details = JSONObject()
                details.append("cause", "chain")
                details.append("first_bad_seq", .int(bad))
                details.append("reason", .string(scan.reason ?? ""))
                maintenance.append(AuditEntry(kind: "integrity_break", details: details).body())
            }
        }
        // The seq the next maintenance record gets.
        func nextSeq() -> Int64 { (scan.tail?.seq ?? 0) + Int64(maintenance.count) + 1 }
        var journalBreak: Int64?
        if let cut = journalCut(journalTail, scan: scan) {
            logger.critical(
                "audit log tail cut: the journal holds records the local log lacks; recording an integrity break",
                metadata: ["reason": "\(cut)", "journal_last_seq": "\(journalTail?.seq ?? 0)"])
            journalBreak = nextSeq()
            var details = JSONObject()
            details.append("cause", "tail_cut")
            details.append("first_bad_seq", .int(nextSeq()))
            details.append("reason", .string(cut))
            details.append("local_last_seq", .int(scan.tail?.seq ?? 0))
            details.append("journal_last_seq", .int(journalTail?.seq ?? 0))
            details.append("journal_last_hash", .string(journalTail?.hash ?? ""))
            maintenance.append(AuditEntry(kind: "integrity_break", details: details).body())
        }
        if let previous = previousLog, !scan.previousLogIDs.contains(previous.logID) {
            var details = JSONObject()
            if previous.resetMicros == nil {
                let reason =
                    "the journal holds log \(previous.logID) of this directory (last seq \(previous.lastSeq)), which is gone "
                    + "and was not reset: the audit directory or its key was deleted"
                logger.critical("audit log replaced without a reset", metadata: ["previous_log_id": "\(previous.logID)", "log_id": "\(logID)"])
                if journalBreak == nil { journalBreak = nextSeq() }
                details.append("cause", "log_replaced")
                details.append("first_bad_seq", .int(nextSeq()))
                details.append("reason", .string(reason))
            }
            details.append("previous_log_id", .string(previous.logID))
            details.append("previous_last_seq", .int(previous.lastSeq))
            details.append("previous_last_hash", .string(previous.lastHash))
            details.append("previous_reset", .bool(previous.resetMicros != nil))
            maintenance.append(
                AuditEntry(kind: previous.resetMicros == nil ? "integrity_break" : "log_started", details: details).body())
        }
        if scan.firstBadSeq == nil, let journalBreak {
            shared.withLock { $0.health.firstBadSeq = journalBreak }
        }
        for open in scan.openDecisions {
            var entry = AuditEntry(kind: "outcome", auditID: open.auditID, outcome: .unknown)
            entry.client = open.record["client"]
            entry.method = open.record["method"]?.stringValue
            entry.target = open.record["target"]
            entry.details = ["decision_seq": .int(open.seq), "reason": "the daemon stopped before the outcome was recorded"]
            maintenance.append(entry.body())
        }
        writer.deferred = maintenance
        do { try writer.ensureOpen() } catch {
            writer.needsReopen = true
            writer.publish(error: "\(error)")
            logger.error("audit log not writable at start-up; refusing gated requests", metadata: ["error": "\(error)"])
        }
        if !maintenance.isEmpty { _ = writer.commit([]) }
        writer.prune()
        if let journal, writer.head.seq > 0 {
            journal.checkpoint(seq: writer.head.seq, hash: writer.head.hash, segment: writer.segments.last?.name ?? "", reason: "open")
        }
        return AuditLog(
            config: config, logger: logger, key: key, logID: logID, realDirectory: realDirectory, lock: lock, writer: writer,
            shared: shared, journal: journal)
    }

    /// Why the local log does not reach the journal's last record of it, or nil. Not reported
    /// twice for the same journal tail (a break recorded but not yet mirrored when the daemon died).
    private static func journalCut(_ tail: JournalRecordRef?, scan: ChainScan) -> String? {
        guard let tail, !scan.recordedCuts.contains("\(tail.seq):\(tail.hash)") else { return nil }
        let localLast = scan.tail?.seq ?? 0
        if tail.seq > localLast {
            return "the journal holds records of this log through seq \(tail.seq), but the local log ends at seq \(localLast): "
                + "\(tail.seq - localLast) records were cut from its end"
        }
        if let local = scan.hashes[tail.seq], local != tail.hash {
            return "record \(tail.seq) differs from its journal copy: the local log was cut back and written on"
        }
        return nil
    }

    /// Moves torn bytes to `quarantine/`, cuts the segment back to its last whole line, and returns
    /// the `recovered` record body.
    private static func quarantine(
        _ torn: (segment: Int, offset: Int, bytes: [UInt8]), segments: [SegmentInfo], directory: String, logger: Logger
    ) throws -> JSONObject {
        let segment = segments[torn.segment]
        let quarantineDir = directory + "/" + quarantineDirectory
        try POSIXFile.ensurePrivateDirectory(quarantineDir)
        try POSIXFile.syncDirectory(directory)
        let name = "torn-\(segment.firstSeq)-\(torn.offset)-\(AuditTime.nowMicros()).bin"
        try POSIXFile.createFile(quarantineDir + "/" + name, torn.bytes)
        let path = directory + "/" + segment.name
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXFailure("open", path) }
        defer { Glibc.close(fd) }
        guard ftruncate(fd, off_t(torn.offset)) == 0 else { throw POSIXFailure("ftruncate", path) }
        try POSIXFile.dataSync(fd, path: path)
        logger.warning(
            "audit log had a torn last line (crash mid-write); quarantined",
            metadata: ["segment": "\(segment.name)", "bytes": "\(torn.bytes.count)", "quarantine": "\(name)"])
        var details = JSONObject()
        details.append("segment", .string(segment.name))
        details.append("offset", .int(Int64(torn.offset)))
        details.append("bytes", .int(Int64(torn.bytes.count)))
        details.append("sha256", .string(SHA256.hash(data: torn.bytes).hexString))
        details.append("quarantine", .string(quarantineDirectory + "/" + name))
        return AuditEntry(kind: "recovered", details: details).body()
    }

    static func loadOrCreateKey(directory: String) throws -> SymmetricKey {
        let path = directory + "/" + keyFileName
        if POSIXFile.exists(path) {
            let bytes = try POSIXFile.read(path)
            guard bytes.count == 32 else { throw AuditError.unavailable("\(path) is not a 32-byte key") }
            _ = chmod(path, 0o600)
            return SymmetricKey(data: bytes)
        }
        let key = SymmetricKey(size: .bits256)
        try POSIXFile.createFile(path, key.withUnsafeBytes { Array($0) })
        return key
    }

    static func logID(key: SymmetricKey) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("deskgate audit log id".utf8), using: key)
        return Array(mac).prefix(16).hexString
    }

    /// The log id of the log in `directory` (for `verify --journal` without a running daemon).
    public static func logID(directory: String) throws(AuditError) -> String {
        do {
            let bytes = try POSIXFile.read(directory + "/" + keyFileName)
            guard bytes.count == 32 else { throw AuditError.unavailable("bad key file") }
            return logID(key: SymmetricKey(data: bytes))
        } catch {
            throw .unavailable("cannot read the audit key in \(directory): \(error)")
        }
    }

    // MARK: Appending

    /// Appends one record and returns once it is durable (written and fdatasync'ed). Concurrent
    /// calls are committed together. Throws ``AuditError/unavailable(_:)`` (-32007) when the log
    /// cannot be written or is closed; nothing was recorded then.
    public func append(_ entry: AuditEntry) async throws -> AuditReceipt {
        let body = entry.body()
        return try await withCheckedThrowingContinuation { continuation in
            let schedule = pending.withLock { state -> Bool? in
                if state.closed { return nil }
                state.items.append((body, continuation))
                if state.draining { return false }
                state.draining = true
                return true
            }
            switch schedule {
            case nil: continuation.resume(throwing: AuditError.unavailable("the audit log is closed"))
            case true?: writerQueue.async { self.drain() }
            case false?: break
            }
        }
    }

    // MARK: Retention

    /// Puts `retention` in force: from now on (and at once) whole segments past it are pruned.
    /// Returns at once; the writer queue applies it before its next batch, and of several calls
    /// made in a row the last one wins. ``health`` shows what is in force.
    public func applyRetention(_ retention: AuditRetention) { scheduleRetention(.apply(retention)) }

    /// Stops pruning until the next ``applyRetention(_:)``, e.g. while the policy that sets
    /// retention cannot be read (records deleted on a guess cannot be brought back).
    public func holdRetention(reason: String) { scheduleRetention(.hold(reason)) }

    private func scheduleRetention(_ update: RetentionUpdate) {
        retentionUpdate.withLock { $0 = update }
        writerQueue.async { self.takeRetentionUpdate() }
    }

    /// Writer queue.
    private func takeRetentionUpdate() {
        let update = retentionUpdate.withLock { state -> RetentionUpdate? in
            defer { state = nil }
            return state
        }
        switch update {
        case .apply(let retention)?: writer.setRetention(retention, heldBecause: nil)
        case .hold(let reason)?: writer.setRetention(nil, heldBecause: reason)
        case nil: break
        }
    }

    /// Returns once everything handed to the writer queue before this call (appends, retention
    /// changes, pruning) has run.
    public func settled() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            writerQueue.async { continuation.resume() }
        }
    }

    /// Writer queue: commits everything pending as one batch, repeatedly, until nothing is left.
    ///
    /// Group commit: appenders woken by the previous batch come back one by one, so a batch started
    /// at the first arrival would carry only a few records. When fewer are waiting than the last
    /// batch held, wait briefly (at most a quarter of the last sync, capped at 500 µs) for the rest.
    private func drain() {
        var expected = 1
        var lastSync: Duration = .zero
        let clock = ContinuousClock()
        while true {
            takeRetentionUpdate()  // a busy queue must not keep a retention change waiting
            var batch = takePending()
            if batch.isEmpty { return }
            if batch.count < expected {
                let deadline = clock.now + min(lastSync / 4, .microseconds(500))
                while batch.count + pendingCount() < expected, clock.now < deadline { usleep(20) }
                batch += takePending()
            }
            expected = batch.count
            let started = clock.now
            switch writer.commit(batch.map(\.body)) {
            case .success(let receipts):
                for (item, receipt) in zip(batch, receipts) { item.continuation.resume(returning: receipt) }
            case .failure(let error):
                for item in batch { item.continuation.resume(throwing: error) }
            }
            lastSync = clock.now - started
            if writer.rotatedSincePrune { writer.prune() }
        }
    }

    private func takePending() -> [(body: JSONObject, continuation: CheckedContinuation<AuditReceipt, any Error>)] {
        pending.withLock { state in
            let items = state.items
            state.items = []
            if items.isEmpty { state.draining = false }
            return items
        }
    }

    private func pendingCount() -> Int { pending.withLock { $0.items.count } }

    // MARK: Values

    /// How a typed value is recorded: `{len, hmac}`: its length in characters and the HMAC-SHA256
    /// (hex) under this installation's key, so "was X typed?" can be answered without storing X.
    public func valueDigest(_ value: String) -> JSONValue {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(value.utf8), using: key)
        return ["len": .int(Int64(value.count)), "hmac": .string(Array(mac).hexString)]
    }

    /// How a password-field value is recorded: its length only.
    public static func lengthOnly(_ value: String) -> JSONValue { ["len": .int(Int64(value.count))] }

    /// Whether `digest` (from ``valueDigest(_:)``) was made from `candidate`.
    public func digest(_ digest: JSONValue, matches candidate: String) -> Bool {
        guard let hmac = digest["hmac"]?.stringValue else { return false }
        return valueDigest(candidate)["hmac"]?.stringValue == hmac
    }

    // MARK: Reading

    /// Current state for `daemon.info`.
    public var health: AuditHealth { shared.withLock { $0.health } }

    /// Re-reads the whole log (up to what is durable) and checks the chain; with `journal`, also
    /// against this log's journal checkpoints.
    public func verify(journal: Bool = false) async -> AuditVerification {
        let directory = self.directory
        let logID = self.logID
        let known = health.firstBadSeq
        var result = await onReader { () -> AuditVerification in
            var last = AuditVerification(ok: false, records: 0, reason: "segments changed while reading")
            for attempt in 0..<5 {
                if attempt > 0 { usleep(useconds_t(2000 * attempt)) }  // a prune was removing files
                let segments = self.shared.withLock { $0.segments }
                let limits = Dictionary(segments.map { ($0.name, $0.bytes) }, uniquingKeysWith: { a, _ in a })
                do {
                    return try AuditVerifier.verify(
                        directory: directory, segments: segments, limits: limits,
                        journal: journal ? JournalScope(logID: logID, directory: self.realDirectory, uid: geteuid()) : nil)
                } catch {
                    last.reason = "\(error)"
                }
            }
            return last
        }
        // A break found at start-up stays reported even if someone "fixes" the files since.
        if let known, result.firstBadSeq.map({ $0 > known }) ?? true {
            result.ok = false
            result.firstBadSeq = known
            result.reason = result.reason ?? "integrity break found at start-up"
        }
        return result
    }

    /// Records matching `filter`, oldest first, at most `filter.limit`.
    public func query(_ filter: AuditFilter) async throws -> AuditQueryResult {
        let directory = self.directory
        let (segments, lastSeq) = shared.withLock { ($0.segments, $0.health.lastSeq) }
        return try await onReader {
            let records = try AuditReader.query(directory: directory, segments: segments, filter: filter)
            return AuditQueryResult(records: records, lastSeq: lastSeq)
        }
    }

    private func onReader<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            ReaderThread.start { continuation.resume(with: Result { try work() }) }
        }
    }

    private func onReader<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            ReaderThread.start { continuation.resume(returning: work()) }
        }
    }

    /// Batches committed and records in them so far: how well concurrent appends share one
    /// fdatasync (group commit).
    public func batchStatistics() -> (batches: Int, records: Int) {
        writerQueue.sync { (writer.batches, writer.batchedRecords) }
    }

    // MARK: Closing

    /// Lets pending appends finish, writes the final journal checkpoint and closes the file.
    /// Later appends throw ``AuditError/unavailable(_:)``.
    public func close() async {
        pending.withLock { $0.closed = true }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            writerQueue.async {
                self.writer.shutdown()
                self.lock.release()
                continuation.resume()
            }
        }
    }
}

/// Runs one blocking read on a thread of its own, so reads run side by side and never on the
/// cooperative pool. Not a concurrent DispatchQueue: on Linux its first job arms libdispatch's
/// 1 Hz thread-pool monitor for the rest of the process's life (an idle daemon would wake every
/// second). Reads are rare (queries, verification), so a thread each costs nothing that matters.
enum ReaderThread {
    private final class Body: @unchecked Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    static func start(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        guard rc == 0 else {
            // No thread to be had (resource limit): run here rather than lose the read.
            Unmanaged<Body>.fromOpaque(box).takeRetainedValue().run()
            return
        }
        pthread_detach(thread)
    }
}
