import Dispatch
import Glibc
import JSONRPC
import Logging
import Synchronization

/// What readers may look at while the writer runs: the segments and how many bytes of each are
/// durable (readers never see a half-written batch), plus health.
struct SharedState: Sendable {
    var health: AuditHealth
    var segments: [SegmentInfo]
}

/// The shared state behind a lock, referenced by both the log and its writer.
final class SharedStateBox: Sendable {
    private let mutex: Mutex<SharedState>
    init(_ state: SharedState) { mutex = Mutex(state) }
    func withLock<T>(_ body: (inout SharedState) -> T) -> T { mutex.withLock { body(&$0) } }
}

/// The single writer. Touched only on the log's serial writer queue (and during `open`, before the
/// queue exists for anyone else), which is what makes the unchecked Sendable sound.
final class AuditWriter: @unchecked Sendable {
    let directory: String
    let config: AuditConfig
    let logger: Logger
    let journal: JournalMirror?
    let shared: SharedStateBox

    var segments: [SegmentInfo] = []
    var fd: Int32 = -1
    /// Bytes of the current (last) segment known to be on disk.
    var durableSize = 0
    var head: (seq: Int64, hash: String) = (0, AuditChain.genesis)
    /// After a failed write or sync the page cache cannot be trusted (fsyncgate): reopen, cut the
    /// file back to the durable size and sync again before the next batch.
    var needsReopen = false
    /// Maintenance records not yet written (e.g. `recovered` when the disk was full at start-up);
    /// they go first in the next batch.
    var deferred: [JSONObject] = []
    var recordsSinceCheckpoint = 0
    var rotatedSincePrune = false
    /// What pruning keeps; nil: prune nothing (retention not known yet, or held).
    var retention: AuditRetention?
    /// The audit directory's (device, inode) when the log was opened.
    var directoryIdentity: POSIXFile.Identity?
    /// Why the log stopped for good: its directory was removed or replaced, or the current
    /// segment deleted, while it was open. Every later append fails (-32007) until the log is
    /// opened again (a daemon restart): writing on would put records in files nobody can find.
    var detached: String?
    var closed = false
    /// The last acknowledged bytes of the current segment (at least `tailKeep` when there are that many), starting at file
    /// offset `tailOffset`. After a failed writeback the kernel may have lost blocks holding
    /// acknowledged records near the end (seen with ext4 on a failing device: the block shared with
    /// the failed batch, and with 1 KiB blocks others before it), so recovery writes them again.
    var tail: [UInt8] = []
    var tailOffset = 0
    static let tailKeep = 64 << 10
    /// Successful batches and the records in them (the benchmark reports the mean batch size).
    var batches = 0
    var batchedRecords = 0

    init(directory: String, config: AuditConfig, logger: Logger, journal: JournalMirror?, shared: SharedStateBox) {
        self.directory = directory
        self.config = config
        self.logger = logger
        self.journal = journal
        self.shared = shared
        if !config.deferRetention { retention = AuditRetention(days: config.retentionDays, maxBytes: config.maxBytes) }
    }

    /// Microseconds since the epoch (the config's test clock, else the wall clock).
    func now() -> Int64 { config.clock?() ?? AuditTime.nowMicros() }

    /// Puts `retention` in force (and prunes by it at once), or holds pruning for `heldBecause`.
    func setRetention(_ retention: AuditRetention?, heldBecause: String?) {
        self.retention = retention
        shared.withLock {
            $0.health.retention = retention
            $0.health.retentionHeld = retention == nil ? heldBecause : nil
        }
        if retention != nil { prune() }
    }

    deinit { if fd >= 0 { close(fd) } }

    private var currentPath: String { directory + "/" + (segments.last?.name ?? "") }

    /// Seals and writes `bodies` (after any deferred records) as one write and one fdatasync.
    /// On success every record is durable; on failure none was acknowledged and the file is cut
    /// back, so seq stays gapless and the chain unbroken when writing resumes.
    func commit(_ bodies: [JSONObject]) -> Result<[AuditReceipt], AuditError> {
        if closed { return .failure(.unavailable("the audit log is closed")) }
        if let detached { return .failure(.unavailable(detached)) }
        let all = deferred + bodies
        if all.isEmpty { return .success([]) }
        do {
            try checkAttached()
            try ensureOpen()
            if durableSize >= config.segmentMaxBytes || currentSegmentIsOld() { try rotate() }
            var seq = head.seq
            var prev = head.hash
            var buffer: [UInt8] = []
            var receipts: [AuditReceipt] = []
            var mirrored: [JournalMirror.Mirrored] = []
            var lastMicros: Int64 = 0
            var firstMicros: Int64?
            receipts.reserveCapacity(all.count)
            for body in all {
                seq += 1
                lastMicros = now()
                if firstMicros == nil { firstMicros = lastMicros }
                let time = RFC3339.format(micros: lastMicros)
                let sealed = AuditChain.seal(body, seq: seq, time: time, prev: prev)
                buffer.append(contentsOf: sealed.line)
                receipts.append(AuditReceipt(seq: seq, hash: sealed.hash, time: time))
                if journal != nil { mirrored.append(JournalMirror.mirrored(body, seq: seq, hash: sealed.hash, line: sealed.line)) }
                prev = sealed.hash
            }
            try POSIXFile.writeAll(fd, buffer, path: currentPath, chunk: config.writeChunkBytes)
            try POSIXFile.dataSync(fd, path: currentPath)
            // Again after the sync: a removal meanwhile means this batch went nowhere anyone can find.
            try checkAttached()

            deferred = []
            batches += 1
            batchedRecords += all.count
            head = (seq, prev)
            durableSize += buffer.count
            tail.append(contentsOf: buffer)
            if tail.count > 2 * Self.tailKeep {  // trim in steps: no 64 KiB memmove per batch
                let drop = tail.count - Self.tailKeep
                tail.removeFirst(drop)
                tailOffset += drop
            }
            segments[segments.count - 1].bytes = durableSize
            segments[segments.count - 1].lastSeq = seq
            segments[segments.count - 1].lastHash = prev
            segments[segments.count - 1].lastMicros = lastMicros
            if segments[segments.count - 1].firstMicros == nil { segments[segments.count - 1].firstMicros = firstMicros }
            publish(error: nil)
            if let journal {
                journal.mirror(mirrored)
                recordsSinceCheckpoint += all.count
                if recordsSinceCheckpoint >= 100 {
                    recordsSinceCheckpoint = 0
                    journal.checkpoint(seq: seq, hash: prev, segment: segments.last!.name, reason: "periodic")
                }
            }
            return .success(Array(receipts.suffix(bodies.count)))
        } catch {
            if fd >= 0 { _ = ftruncate(fd, off_t(durableSize)) }
            needsReopen = true
            let reason = "\(error)"
            if shared.withLock({ $0.health.writable }) {
                logger.error("audit log not writable; refusing gated requests", metadata: ["error": "\(reason)"])
            }
            publish(error: reason)
            return .failure(.unavailable(reason))
        }
    }

    /// Throws (and marks the log ``detached`` for good) when the path no longer leads to the
    /// directory the log was opened in, or the current segment lost its name. Two stat calls per
    /// batch, next to an fdatasync: the cheap way to notice `rm -rf` without a timer.
    private func checkAttached() throws {
        if let detached { throw Detached(description: detached) }
        var st = stat()
        var reason: String?
        if stat(directory, &st) != 0 {
            guard errno == ENOENT || errno == ENOTDIR else { throw POSIXFailure("stat", directory) }
            reason = "the audit directory \(directory) was removed while the daemon ran"
        } else if let opened = directoryIdentity, POSIXFile.Identity(st) != opened {
            reason = "the audit directory \(directory) was moved or replaced while the daemon ran"
        } else if fd >= 0, fstat(fd, &st) == 0, st.st_nlink == 0 {
            reason = "the current audit segment \(segments.last?.name ?? "") was deleted while the daemon ran"
        }
        guard let reason else { return }
        let message = reason + "; gated requests are refused until the daemon restarts"
        detached = message
        logger.critical("audit directory gone from under the running daemon; refusing gated requests until restart",
                        metadata: ["reason": "\(reason)"])
        shared.withLock { $0.health.detached = true }
        throw Detached(description: message)
    }

    struct Detached: Error, CustomStringConvertible {
        let description: String
    }

    /// Opens the current segment (creating the first one), recovering from an earlier failure.
    func ensureOpen() throws {
        if fd >= 0 && !needsReopen { return }
        if fd >= 0 { close(fd); fd = -1 }
        guard let last = segments.last else {
            try createSegment(firstSeq: head.seq + 1)
            needsReopen = false
            return
        }
        let path = directory + "/" + last.name
        try restoreTail(path: path)
        let newFD = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard newFD >= 0 else { throw POSIXFailure("open", path) }
        fd = newFD
        needsReopen = false
    }

    /// Puts the current segment back to exactly its acknowledged bytes: rewrites the remembered
    /// tail (the page cache cannot be trusted after a failed sync), cuts anything after it, syncs.
    private func restoreTail(path: String) throws {
        let rw = open(path, O_WRONLY | O_CLOEXEC)
        guard rw >= 0 else { throw POSIXFailure("open", path) }
        defer { close(rw) }
        var st = stat()
        guard fstat(rw, &st) == 0 else { throw POSIXFailure("stat", path) }
        guard tailOffset + tail.count == durableSize, Int(st.st_size) >= tailOffset else {
            throw POSIXFailure("segment shorter than its acknowledged records:", path, EIO)
        }
        var written = 0
        while written < tail.count {
            let n = tail.withUnsafeBytes { buffer in
                pwrite(rw, buffer.baseAddress! + written, tail.count - written, off_t(tailOffset + written))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXFailure("pwrite", path)
            }
            written += n
        }
        guard ftruncate(rw, off_t(durableSize)) == 0 else { throw POSIXFailure("ftruncate", path) }
        try POSIXFile.dataSync(rw, path: path)
    }

    /// Remembers the end of the current segment after start-up (see `tail`).
    func loadTail() {
        guard let last = segments.last, durableSize > 0 else { return }
        let start = max(0, durableSize - Self.tailKeep)
        guard let bytes = try? POSIXFile.read(directory + "/" + last.name, limit: durableSize), bytes.count == durableSize else {
            return
        }
        tail = Array(bytes[start...])
        tailOffset = start
    }

    private func createSegment(firstSeq: Int64) throws {
        let name = SegmentInfo.name(firstSeq: firstSeq)
        let path = directory + "/" + name
        var newFD = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o600)
        if newFD < 0, errno == EEXIST, POSIXFile.size(path) == 0 {
            newFD = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        }
        guard newFD >= 0 else { throw POSIXFailure("create", path) }
        do { try POSIXFile.syncDirectory(directory) } catch {
            close(newFD)
            throw error
        }
        fd = newFD
        segments.append(SegmentInfo(name: name, firstSeq: firstSeq, bytes: 0))
        durableSize = 0
        tail = []
        tailOffset = 0
        publishSegments()
    }

    /// A segment older than a day is closed at the next append, so retention (which removes whole
    /// segments) is not held up by a quiet log; there is no timer while idle.
    private func currentSegmentIsOld() -> Bool {
        guard durableSize > 0, let first = segments.last?.firstMicros else { return false }
        return now() - first > Self.maxSegmentAgeMicros
    }

    static let maxSegmentAgeMicros: Int64 = 86_400_000_000

    private func rotate() throws {
        if fd >= 0 { close(fd); fd = -1 }
        needsReopen = true  // if creating the next segment fails, reopen the current one
        try createSegment(firstSeq: head.seq + 1)
        needsReopen = false
        rotatedSincePrune = true
        if let journal, head.seq > 0 {
            journal.checkpoint(seq: head.seq, hash: head.hash, segment: segments.last!.name, reason: "rotate")
        }
    }

    /// Removes whole old segments past retention or beyond `maxBytes`, after a durable `pruned`
    /// record names them and the last pruned hash (the anchor the remaining chain starts from).
    /// Does nothing while no retention is in force (it then runs when one is applied).
    func prune() {
        guard let retention else { return }
        rotatedSincePrune = false
        guard segments.count > 1 else { return }
        let cutoff = now() - Int64(retention.days) * 86_400_000_000
        var count = 0
        while count < segments.count - 1, let last = segments[count].lastMicros, last < cutoff { count += 1 }
        if let maxBytes = retention.maxBytes {
            var total = segments[count...].reduce(0) { $0 + $1.bytes }
            while count < segments.count - 1, total > maxBytes {
                total -= segments[count].bytes
                count += 1
            }
        }
        guard count > 0 else { return }
        let removed = Array(segments[..<count])
        if let newest = removed.last(where: { $0.lastSeq != nil }), let through = newest.lastSeq, let hash = newest.lastHash {
            var details = JSONObject()
            details.append("segments", .array(removed.map { .string($0.name) }))
            details.append("through_seq", .int(through))
            details.append("last_pruned_hash", .string(hash))
            details.append("bytes", .int(Int64(removed.reduce(0) { $0 + $1.bytes })))
            details.append("retention_days", .int(Int64(retention.days)))
            if let maxBytes = retention.maxBytes { details.append("max_bytes", .int(Int64(maxBytes))) }
            guard case .success = commit([AuditEntry(kind: "pruned", details: details).body()]) else { return }
        }
        // Readers stop seeing the segments before they disappear.
        segments.removeFirst(count)
        publishSegments()
        for segment in removed {
            if unlink(directory + "/" + segment.name) != 0 && errno != ENOENT {
                logger.error("cannot remove pruned audit segment", metadata: ["segment": "\(segment.name)"])
            }
        }
        try? POSIXFile.syncDirectory(directory)
        logger.info("pruned audit segments", metadata: ["count": "\(count)", "through_seq": "\(removed.last?.lastSeq ?? 0)"])
    }

    /// Final checkpoint and close.
    func shutdown() {
        guard !closed else { return }
        if let journal, head.seq > 0 {
            journal.checkpoint(seq: head.seq, hash: head.hash, segment: segments.last?.name ?? "", reason: "close")
            journal.flush()
            journal.awaitStored(checkpointSeq: head.seq)
        }
        if fd >= 0 { close(fd); fd = -1 }
        closed = true
        shared.withLock {
            $0.health.writable = false
            $0.health.lastError = "closed"
        }
    }

    func publish(error: String?) {
        let head = self.head
        let segments = self.segments
        shared.withLock {
            $0.health.writable = error == nil
            $0.health.lastError = error
            $0.health.lastSeq = head.seq
            $0.health.lastHash = head.hash
            $0.segments = segments
        }
    }

    func publishSegments() {
        let segments = self.segments
        shared.withLock { $0.segments = segments }
    }
}
