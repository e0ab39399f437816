import Glibc
import JSONRPC
import Synchronization

/// An `flock` on the audit directory: shared while a log is open (several readers and the
/// daemon), exclusive for ``AuditLog/reset(directory:)``, so a reset never pulls the directory
/// from under a running daemon. Released by ``release()`` or when the object goes away.
final class DirectoryLock: Sendable {
    private let fd: Mutex<Int32>
    /// The directory locked (device, inode): the path named it when the lock was taken.
    let identity: POSIXFile.Identity

    init(_ path: String, exclusive: Bool) throws {
        let (fd, identity) = try Self.lock(path, exclusive: exclusive)
        self.fd = Mutex(fd)
        self.identity = identity
    }

    deinit { release() }

    func release() {
        fd.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    private static func lock(_ path: String, exclusive: Bool) throws -> (Int32, POSIXFile.Identity) {
        for _ in 0..<3 {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw POSIXFailure("open", path) }
            var locked = false
            // A reset holds the lock for a rename and one journal entry: wait up to 2 s for it.
            for _ in 0..<(exclusive ? 1 : 200) {
                if flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 {
                    locked = true
                    break
                }
                guard errno == EWOULDBLOCK || errno == EINTR else {
                    let failure = POSIXFailure("flock", path)
                    close(fd)
                    throw failure
                }
                if !exclusive { usleep(10_000) }
            }
            guard locked else {
                close(fd)
                throw AuditError.unavailable(
                    exclusive
                        ? "the audit log in \(path) is in use (deskgated has it open): stop the daemon first"
                        : "the audit log in \(path) is being reset; try again")
            }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let failure = POSIXFailure("stat", path)
                close(fd)
                throw failure
            }
            // Locked: the path must still name this directory (a reset may have moved it meanwhile).
            if let now = try? POSIXFile.identity(path), now == POSIXFile.Identity(st) { return (fd, POSIXFile.Identity(st)) }
            close(fd)
            if !exclusive { try POSIXFile.ensurePrivateDirectory(path) }
        }
        throw AuditError.unavailable("the audit directory \(path) kept changing while it was being opened")
    }
}

/// What ``AuditLog/reset(directory:)`` did.
public struct AuditResetResult: Sendable, Equatable {
    /// The retired log.
    public let logID: String
    /// Its last record (0 for an empty log).
    public let lastSeq: Int64
    public let lastHash: String
    /// Where its files are now.
    public let movedTo: String
    /// Whether the journal recorded the reset (false: no journald running).
    public let journaled: Bool

    public var json: JSONValue {
        [
            "log_id": .string(logID), "last_seq": .int(lastSeq), "last_hash": .string(lastHash), "moved_to": .string(movedTo),
            "journaled": .bool(journaled),
        ]
    }
}

extension AuditLog {
    /// Retires the log in `directory` on purpose: moves the whole directory (segments and key)
    /// aside to `<directory>.reset-<UTC time>` and records the reset (log id, last seq and hash,
    /// where the files went) in the journal, so `verify --journal` tells the next log's start
    /// from a deletion. The next open starts a new log with a new key and id, whose first record
    /// names this one. Refused while a daemon has the log open (it holds the directory lock);
    /// when journald does not take the record the directory is moved back and nothing changes.
    public static func reset(directory: String) throws(AuditError) -> AuditResetResult {
        do {
            let logID = try AuditLog.logID(directory: directory)
            let lock = try DirectoryLock(directory, exclusive: true)
            defer { lock.release() }
            let real = POSIXFile.realPath(directory) ?? directory
            let tail = try ChainScan.run(directory: directory, findTornTail: true).tail
            let parent = POSIXFile.parentDirectory(of: real)
            let stamp = RFC3339.format(micros: AuditTime.nowMicros(), fractionDigits: 0).replacingColons()
            var target = real + ".reset-" + stamp
            var n = 2
            while POSIXFile.exists(target) {
                target = real + ".reset-" + stamp + "-\(n)"
                n += 1
            }
            guard rename(real, target) == 0 else { throw POSIXFailure("rename", real) }
            var journaled = false
            do {
                try POSIXFile.syncDirectory(parent)
                if JournalMirror.present {
                    try JournalMirror.sendReset(
                        logID: logID, directory: real, seq: tail?.seq ?? 0, hash: tail?.hash ?? AuditChain.genesis, movedTo: target)
                    journaled = true
                }
            } catch {
                // Unrecorded, the move would look like a deletion: put the log back.
                if rename(target, real) == 0 { try? POSIXFile.syncDirectory(parent) }
                throw error
            }
            return AuditResetResult(
                logID: logID, lastSeq: tail?.seq ?? 0, lastHash: tail?.hash ?? AuditChain.genesis, movedTo: target, journaled: journaled)
        } catch let error as AuditError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }
}

extension String {
    fileprivate func replacingColons() -> String { String(unicodeScalars.filter { $0 != ":" }) }
}
