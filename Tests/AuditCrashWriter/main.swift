// Appends audit records from several tasks until killed, printing "ACK <seq> <request id>" after
// each append returns (i.e. once the record is durable). AuditTests' crash-injection test kills it
// with SIGKILL at random moments and checks every acknowledged record survived.
//
// Usage: audit-crash-writer DIR [appenders] [write-chunk-bytes]
import Audit
import Glibc
import JSONRPC
import Logging

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandleless.write("usage: audit-crash-writer DIR [appenders] [write-chunk-bytes]\n", fd: 2)
    exit(2)
}

enum FileHandleless {
    /// One write(2) per line, so lines from concurrent tasks never interleave.
    static func write(_ text: String, fd: Int32 = 1) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}


let appenders = arguments.count >= 3 ? Int(arguments[2]) ?? 4 : 4
let chunk = arguments.count >= 4 ? Int(arguments[3]) : nil
var logger = Logger(label: "audit-crash-writer")
logger.logLevel = .error
// AUDIT_CRASH_WRITER_JOURNAL=1 mirrors to the journal (scripts/journald-test.sh CLI checks).
let journal: JournalMode = getenv("AUDIT_CRASH_WRITER_JOURNAL").map { String(cString: $0) == "1" } == true ? .auto : .off
let config = AuditConfig(directory: arguments[1], segmentMaxBytes: 64 << 10, journal: journal, writeChunkBytes: chunk)
let log: AuditLog
do { log = try AuditLog.open(config: config, logger: logger) } catch {
    FileHandleless.write("open failed: \(error)\n", fd: 2)
    exit(1)
}
FileHandleless.write("READY \(log.health.lastSeq)\n")
let pid = getpid()
await withTaskGroup(of: Void.self) { group in
    for worker in 0..<appenders {
        group.addTask {
            var n = 0
            while true {
                n += 1
                let id = "\(pid)-\(worker)-\(n)"
                let kind = n % 2 == 1 ? "decision" : "outcome"
                let auditID = "\(pid)-\(worker)-\((n + 1) / 2)"
                do {
                    let receipt = try await log.append(
                        AuditEntry(
                            kind: kind, auditID: auditID,
                            client: ["uid": 1000, "pid": .int(Int64(pid)), "exe": "/usr/bin/agent"],
                            method: "element.activate",
                            target: ["app": "gedit", "role": "push button", "name": .string("Save \(id)")],
                            decision: kind == "decision" ? ["effect": "allow", "reason": "grant", "rule": "g1"] : nil,
                            outcome: kind == "outcome" ? .ok : nil, durationMs: kind == "outcome" ? 1.5 : nil))
                    FileHandleless.write("ACK \(receipt.seq) \(receipt.hash)\n")
                } catch {
                    FileHandleless.write("ERR \(error)\n")
                    return
                }
            }
        }
    }
}
