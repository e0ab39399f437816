import Audit
import Dispatch
import Foundation
import Glibc
import JSONRPC
import Logging

/// A fresh private directory under /tmp, removed by `remove()`.
struct TempDir {
    let path: String

    init(_ label: String = "audit") {
        var template = Array("/tmp/deskgate-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    var auditDir: String { path + "/audit" }

    func remove() { _ = try? FileManager.default.removeItem(atPath: path) }
}

func testLogger() -> Logger {
    // The integrity-break tests make the log shout on purpose; keep test output readable.
    Logger(label: "audit-tests", factory: { _ in SwiftLogNoOpLogHandler() })
}

func openLog(_ dir: String, segmentMaxBytes: Int = 1 << 20, retentionDays: Int = 30, maxBytes: Int? = nil) throws -> AuditLog {
    try AuditLog.open(
        config: AuditConfig(
            directory: dir, segmentMaxBytes: segmentMaxBytes, retentionDays: retentionDays, maxBytes: maxBytes, journal: .off),
        logger: testLogger())
}

func decision(_ n: Int, exe: String = "/usr/bin/agent", method: String = "element.activate", effect: String = "allow")
    -> AuditEntry
{
    AuditEntry(
        kind: "decision", auditID: "r\(n)", client: ["uid": 1000, "pid": 4242, "exe": .string(exe), "label": "agent"],
        method: method, target: ["app": "gedit", "role": "push button", "name": .string("Save \(n)"), "ref": "e:12"],
        decision: ["effect": .string(effect), "reason": "grant", "rule": "g1"])
}

func outcome(_ n: Int, method: String = "element.activate") -> AuditEntry {
    AuditEntry(kind: "outcome", auditID: "r\(n)", method: method, outcome: .ok, durationMs: 0.25)
}

/// Segment files of a log directory, oldest first.
func segmentFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
        .filter { $0.hasPrefix("audit-") && $0.hasSuffix(".jsonl") }.sorted().map { dir + "/" + $0 }
}

/// All lines of all segments, in order.
func allLines(_ dir: String) -> [String] {
    segmentFiles(dir).flatMap { path -> [String] in
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }
}

func records(_ dir: String) -> [JSONValue] {
    allLines(dir).compactMap { try? JSONParser.parse(Array($0.utf8)) }
}

/// Every byte of every file under `dir`, recursively.
func allFileBytes(under dir: String) -> [(String, [UInt8])] {
    guard let walker = FileManager.default.enumerator(atPath: dir) else { return [] }
    var out: [(String, [UInt8])] = []
    while let relative = walker.nextObject() as? String {
        let path = dir + "/" + relative
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
            let data = FileManager.default.contents(atPath: path)
        {
            out.append((path, [UInt8](data)))
        }
    }
    return out
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first, Array(haystack[i..<i + needle.count]) == needle { return true }
        i += 1
    }
    return false
}

/// Runs blocking work (process spawning, pipe reads) off the cooperative pool.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

func fileMode(_ path: String) -> mode_t {
    var st = stat()
    return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0
}
