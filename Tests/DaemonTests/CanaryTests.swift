import ATSPI
import Audit
@testable import Daemon
import Foundation
import DeskgateAPI
import JSONRPC
import Logging
import Synchronization
import Testing

/// Secrets typed through the daemon stay out of what it writes: the real dispatcher, handlers,
/// broker, gate and audit log over the in-process fake desktop (no desktop needed; the GTK3
/// version of this is `GatedFlowTests.passwordCanary`).
@Suite("Secrets in what the daemon writes")
struct CanaryTests {
    @Test("a canary typed into a normal and a password field (allowed, denied or refused) is in no audit byte, log line or reply; the normal field's value is {len, hmac}, the password's {len}")
    func canary() async throws {
        let log = CapturedLog()
        let world = try RealGate(policy: """
            [[rule]]
            id = "forms"
            effect = "allow"
            actions = ["write"]
            [[rule]]
            id = "no-email"
            effect = "deny"
            actions = ["write"]
            name = "Email"
            """, logger: log.logger)
        defer { try? FileManager.default.removeItem(atPath: world.sandbox) }
        let path = RequestPath(desktop: world.desktop, gate: world.gate, broker: world.broker, logger: log.logger)
        let canary = "canary-7f3a9-SECRET-\(UInt64.random(in: 0...UInt64.max))"

        // Each field written both ways, and a write the broker denies (its decision is recorded too).
        var replies: [JSONValue] = []
        replies.append(try await path.call("text.set", ["ref": "name", "value": .string(canary)]).get())
        replies.append(try await path.call("field.fill", ["app": "ledger", "field": "Name", "value": .string(canary)]).get())
        replies.append(try await path.call("field.fill", ["app": "ledger", "field": "Password", "value": .string(canary)]).get())
        replies.append(try await path.call("text.set", ["ref": "password", "value": .string(canary)]).get())
        let denied = try #require(await path.call("field.fill", ["app": "ledger", "field": "Email", "value": .string(canary)]).failure)
        #expect(denied.code == .denied)
        #expect(denied.data?["rule"] == "no-email")
        replies.append(denied.json)
        #expect(world.desktop.acted.map { $0.target.element?.ref } == ["name", "name", "password", "password"], "the canary was really typed")
        // A refusal the daemon logs: with the audit directory moved away the write fails with
        // -32007, and the log says why (without the value).
        try FileManager.default.moveItem(atPath: world.sandbox + "/audit", toPath: world.sandbox + "/audit-moved")
        let refused = try #require(await path.call("text.set", ["ref": "name", "value": .string(canary)]).failure)
        #expect(refused.code == .auditUnavailable)
        replies.append(refused.json)
        #expect(world.desktop.acted.count == 4, "written without an audit record")

        // Not a byte of it, in any common encoding, in the audit directory (or anything else the
        // daemon keeps), in its log, or in a reply.
        let forms = Self.encodings(of: canary)
        let files = Self.filesUnder(world.sandbox)
        #expect(files.contains { $0.path.hasSuffix(".jsonl") }, "no audit segment under \(world.sandbox)")
        for (file, bytes) in files {
            for (name, form) in forms { #expect(!Self.contains(bytes, form), "canary (\(name)) in \(file)") }
        }
        let logged = log.text
        #expect(logged.contains("audit log unavailable; refusing request"), "the log holds no refusal: \(logged)")
        for (name, form) in forms {
            #expect(!Self.contains(Array(logged.utf8), form), "canary (\(name)) in the daemon's log")
            for reply in replies { #expect(!Self.contains(JSONWriter.bytes(reply), form), "canary (\(name)) in a reply: \(reply)") }
        }

        // What was written, read back from the segment files: a decision and an outcome per
        // request, each with the value as the field's kind demands.
        let records = Self.records(under: world.sandbox + "/audit-moved").filter {
            $0["method"] == "text.set" || $0["method"] == "field.fill"
        }
        #expect(records.filter { $0["kind"] == "decision" }.count == 5)
        #expect(records.filter { $0["kind"] == "outcome" }.count == 5)
        var seen: [String: Int] = [:]
        for record in records {
            let ref = try #require(record["target"]?["ref"]?.stringValue, "no target ref: \(record)")
            let value = try #require(record["target"]?["value"], "no recorded value: \(record)")
            seen[ref, default: 0] += 1
            if ref == "password" {
                #expect(value == ["len": .int(Int64(canary.count))], "password field: length only, got \(value)")
            } else {
                #expect(value.objectValue?.keys.sorted() == ["hmac", "len"], "normal field: \(value)")
                #expect(value["len"] == .int(Int64(canary.count)))
                #expect(world.audit.digest(value, matches: canary), "the digest does not confirm the canary: \(value)")
                #expect(!world.audit.digest(value, matches: canary + "x"))
                #expect(!world.audit.digest(value, matches: ""))
            }
        }
        #expect(seen == ["name": 4, "password": 4, "email": 2])
        await world.audit.close()
    }

    /// The canary as bytes in the encodings a careless writer might use.
    static func encodings(of secret: String) -> [(String, [UInt8])] {
        let utf8 = Array(secret.utf8)
        return [
            ("UTF-8", utf8),
            ("reversed", utf8.reversed()),
            ("UTF-16LE", Array(secret.data(using: .utf16LittleEndian)!)),
            ("UTF-16BE", Array(secret.data(using: .utf16BigEndian)!)),
            ("base64", Array(Data(utf8).base64EncodedString().utf8)),
            ("hex", Array(utf8.map { String(format: "%02x", $0) }.joined().utf8)),
        ]
    }

    /// Every regular file under `directory`, with its bytes.
    static func filesUnder(_ directory: String) -> [(path: String, bytes: [UInt8])] {
        let paths = (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []
        return paths.sorted().compactMap { relative in
            let path = directory + "/" + relative
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { return nil }
            return (path, Array(data))
        }
    }

    /// The audit records as the segment files hold them, in file order.
    static func records(under directory: String) -> [JSONValue] {
        filesUnder(directory).filter { $0.path.hasSuffix(".jsonl") }.flatMap { file in
            file.bytes.split(separator: 0x0A).compactMap { try? JSONParser.parse($0) }
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { start in haystack[start..<(start + needle.count)].elementsEqual(needle) }
    }
}

/// Everything the daemon's parts log, at every level, with its metadata: the in-process
/// counterpart of the daemon's log file.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "deskgated") { label in CapturingLogHandler(sink: self, label: label) }
        logger.logLevel = .trace
        return logger
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }
}

private struct CapturingLogHandler: LogHandler {
    let sink: CapturedLog
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.append("\(event.level) \(label): \(event.message) \(fields)")
    }
}
