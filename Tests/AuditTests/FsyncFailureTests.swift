import Audit
import Foundation
import Glibc
import JSONRPC
import Testing

/// fsync failure for real (Rebello et al., ATC'20): an ext4 file system on a loop device whose
/// backing file lives on a small tmpfs. When the tmpfs fills, writeback to the loop device fails,
/// `fdatasync` reports the error once, and a second `fdatasync` "succeeds" although the data never
/// reached the disk. The log must refuse (-32007), must not trust the page cache afterwards, and
/// once space returns must continue without a gap; after a remount (cold cache) every
/// acknowledged record must be on disk and the chain must verify. Needs root (mount, losetup).
@Suite("Audit fsync failure", .serialized)
struct FsyncFailureTests {
    struct Disk {
        let root: String
        var back: String { root + "/back" }
        var mnt: String { root + "/mnt" }
        var loop: String

        static func sh(_ script: String) throws -> String {
            let result = try ChildProcess.run("/bin/sh", ["-c", "set -e\n" + script], readFor: 60)
            return result.output
        }

        static func make(_ root: String) throws -> Disk {
            let out = try sh(
                """
                mkdir -p \(root)/back \(root)/mnt
                mount -t tmpfs -o size=6m tmpfs \(root)/back
                dd if=/dev/zero of=\(root)/back/filler bs=1M count=2 status=none
                truncate -s 64M \(root)/back/disk.img
                mkfs.ext4 -q -F -O ^has_journal -E lazy_itable_init=0,nodiscard \(root)/back/disk.img
                LOOP=$(losetup --find --show \(root)/back/disk.img)
                mount -o errors=continue,dioread_lock "$LOOP" \(root)/mnt
                echo "LOOP=$LOOP"
                """)
            guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("LOOP=/dev/loop") }) else {
                throw POSIXError(.EIO, userInfo: [NSLocalizedDescriptionKey: "disk setup failed: \(out)"])
            }
            return Disk(root: root, loop: String(line.dropFirst(5)))
        }

        func remount() throws {
            _ = try Self.sh("umount \(mnt)\nmount -o errors=continue,dioread_lock \(loop) \(mnt)")
        }

        func freeSpace() throws { _ = try Self.sh("rm \(back)/filler") }

        func destroy() {
            _ = try? Self.sh("umount -l \(mnt) || true\nlosetup -d \(loop) || true\numount -l \(back) || true")
        }
    }

    /// Record sizes vary where the failing batch starts inside a block (the loss the log has to
    /// repair depends on it).
    @Test(
        "a failed fdatasync fails appends with -32007; after space returns nothing acknowledged is lost",
        arguments: [700, 1611, 2000, 3000])
    func fsyncFailure(pad: Int) async throws {
        let tmp = TempDir("eio")
        defer { tmp.remove() }
        let disk = try await blocking { try Disk.make(tmp.path) }
        defer { disk.destroy() }
        let dir = disk.mnt + "/audit"

        let log = try openLog(dir, segmentMaxBytes: 64 << 20)
        var acked: [Int64: String] = [:]
        var failure: (any Error)?
        for n in 1...20000 {
            var entry = decision(n)
            entry.details = ["pad": .string(String(repeating: "p", count: pad))]
            do {
                let receipt = try await log.append(entry)
                acked[receipt.seq] = receipt.hash
            } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure as? AuditError)
        #expect({ if case .unavailable = error { true } else { false } }(), "\(error)")
        #expect(!log.health.writable)
        // The trap: a plain retry of fdatasync would now report success; the log must not.
        await #expect(throws: AuditError.self) { try await log.append(decision(0)) }
        #expect(acked.count > 100)
        let lastGood = try #require(acked.keys.max())

        try await blocking { try disk.freeSpace() }
        let resumed = try await log.append(decision(-1))
        #expect(resumed.seq == lastGood + 1)
        acked[resumed.seq] = resumed.hash
        #expect(log.health.writable)
        await log.close()

        // Cold cache: what is on the disk.
        try await blocking { try disk.remount() }
        let reopened = try openLog(dir, segmentMaxBytes: 64 << 20)
        #expect(reopened.health.firstBadSeq == nil)
        let verification = await reopened.verify()
        #expect(verification.ok, "\(verification.reason ?? "")")
        await reopened.close()
        var onDisk: [Int64: String] = [:]
        for record in records(dir) {
            if let seq = record["seq"]?.intValue, let hash = record["hash"]?.stringValue { onDisk[seq] = hash }
        }
        let lost = acked.filter { onDisk[$0.key] != $0.value }
        #expect(lost.count == 0, "acknowledged records lost or changed, e.g. \(lost.keys.sorted().prefix(10))")
    }
}
