#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
public import JSONRPC

/// The stop button's state: who paused, when and why. While it is set, every observe, read,
/// act and write request is denied with reason `paused`.
public struct PauseState: Sendable, Hashable {
    public var since: Date
    /// The verified client that paused (its identity's JSON: exe, pid, uid, label).
    public var by: JSONValue
    /// The pausing client's own words, shown as such.
    public var reason: String?

    public init(since: Date, by: JSONValue, reason: String?) {
        self.since = since
        self.by = by
        self.reason = reason
    }

    /// `{paused: true, since, by, reason}`, as `daemon.info` and the pause methods report it.
    public var json: JSONValue {
        ["paused": true, "since": .string(Timestamp.rfc3339(since, milliseconds: true)), "by": by,
         "reason": JSONValue(reason)]
    }

    /// `{paused: false}` when there is no pause.
    public static func json(_ pause: PauseState?) -> JSONValue { pause?.json ?? ["paused": false] }
}

/// Keeps the pause in the state directory (`paused.json`), so it survives a daemon restart
/// until someone resumes. A file that cannot be read or parsed counts as paused: the brake
/// fails closed.
struct PauseFile: Sendable {
    let path: String

    /// The kept pause, nil when there is none. An unreadable or corrupt file is a pause whose
    /// reason says so.
    func load(now: Date) -> PauseState? {
        let bytes: [UInt8]?
        do {
            bytes = try FileIO.read(path, limit: 64 * 1024)
        } catch {
            return PauseState(since: now, by: ["exe": "deskgated"], reason: "the pause file \(path) could not be read (\(error)); resume to clear it")
        }
        guard let bytes else { return nil }
        guard let value = try? JSONParser.parse(bytes), let object = value.objectValue,
              let sinceText = object["since"]?.stringValue, let since = Timestamp.parse(sinceText)
        else {
            return PauseState(since: now, by: ["exe": "deskgated"], reason: "the pause file \(path) is corrupt; resume to clear it")
        }
        return PauseState(since: since, by: object["by"] ?? .null, reason: object["reason"]?.stringValue)
    }

    func store(_ pause: PauseState) throws(FileIO.Failure) {
        try FileIO.writeAtomically(Array(JSONWriter.string(pause.json).utf8) + [0x0A], to: path)
    }

    func remove() throws(FileIO.Failure) {
        if unlink(path) != 0, errno != ENOENT { throw FileIO.Failure(path: path, operation: "unlink", errno: errno) }
    }
}
