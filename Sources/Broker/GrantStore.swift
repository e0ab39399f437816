import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// Remembered grants in memory, and whether their file could be read and written.
struct GrantStore: Sendable {
    var table = GrantTable()
    /// The file could not be read: every request is denied (never allowed) until `revoke_all`
    /// moves it aside.
    var fileError: String?
    /// The last write failed (the grants still hold in memory).
    var writeError: String?

    /// Takes a reload's persistent grants; session and once grants live on in memory.
    mutating func load(_ loaded: Result<[RememberedGrant], GrantFile.Corrupt>, now: Date) {
        for grant in table.all where grant.isPersistent { table.remove(grant.id) }
        switch loaded {
        case .success(let grants):
            fileError = nil
            for grant in grants { table.insert(grant) }
        case .failure(let error):
            fileError = error.description
        }
        _ = table.pruneExpired(now: now)
    }

    /// Every grant removed (the kill switch). Says whether a corrupt file must be moved aside.
    mutating func removeAll() -> (removed: [RememberedGrant], moveCorruptFileAside: Bool) {
        let removed = table.removeAll()
        let corrupt = fileError != nil
        fileError = nil
        return (removed, corrupt)
    }

    /// What the file should hold now; nil while it is corrupt (it is not overwritten then).
    var fileContents: [RememberedGrant]? { fileError == nil ? table.all.filter(\.isPersistent) : nil }
}

/// Writes the grants file in order, on a serial queue of its own (never the cooperative pool):
/// each write reads the newest contents, so of several queued writes the last one wins.
struct GrantFileWriter: Sendable {
    let path: String
    let queue: DispatchQueue
    let logger: Logger

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        queue = DispatchQueue(label: "deskgate.broker.grants")
    }

    /// Queues a write of what `contents` returns when the write runs; `done` gets the error.
    func schedule(contents: @escaping @Sendable () -> [RememberedGrant]?, done: @escaping @Sendable (String?) -> Void) {
        queue.async { [path, logger] in
            guard let grants = contents() else { return }
            do {
                try FileIO.writeAtomically(GrantFile.encode(grants), to: path)
                done(nil)
            } catch {
                logger.error("cannot write the grants file", metadata: ["error": "\(error)"])
                done("\(error)")
            }
        }
    }

    /// Keeps a corrupt file for inspection (`grants.json.corrupt`), queued before later writes.
    func moveCorruptFileAside() {
        queue.async { [path, logger] in
            if let aside = FileIO.moveAside(path, suffix: "corrupt") {
                logger.warning("corrupt grants file moved aside", metadata: ["path": "\(aside)"])
            }
        }
    }

    /// Waits until every write queued so far is done.
    func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
    }
}
