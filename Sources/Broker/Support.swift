#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC
#if canImport(Glibc)
import Glibc
#endif

/// Where the broker reads and writes, and its limits.
public struct BrokerConfig: Sendable {
    /// Admin layer: every `*.toml` in this directory (`/etc/deskgate/policy.d`).
    public var systemPolicyDir: String
    /// User layer (`$XDG_CONFIG_HOME/deskgate/policy.toml`).
    public var userPolicyFile: String
    /// Remembered grants (`$XDG_STATE_HOME/deskgate/grants.json`).
    public var grantsFile: String
    /// The kept pause (`paused.json` beside the grants file), so a pause survives a restart.
    public var pauseFile: String
    /// Executables allowed to register as prompt helpers when no policy file sets `prompt_agents`.
    public var defaultPromptHelpers: [String]
    /// How long a prompt may stay unanswered.
    public var promptTimeout: Duration
    /// How the broker waits (prompt timeouts). The daemon passes an event-loop timer: Swift 6.3's
    /// `Task.sleep` arms libdispatch's 1 Hz pool monitor for good.
    public var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    /// Requests that may wait behind a client's outstanding prompt.
    public var maxQueuedPerClient: Int
    /// Requests that may wait for prompts across all clients.
    public var maxQueuedTotal: Int

    public init(systemPolicyDir: String, userPolicyFile: String, grantsFile: String, defaultPromptHelpers: [String],
                promptTimeout: Duration = .seconds(60), maxQueuedPerClient: Int = 8, maxQueuedTotal: Int = 64) {
        self.systemPolicyDir = systemPolicyDir
        self.userPolicyFile = userPolicyFile
        self.grantsFile = grantsFile
        pauseFile = Text.deletingLastPathComponent(grantsFile) + "/paused.json"
        self.defaultPromptHelpers = defaultPromptHelpers
        self.promptTimeout = promptTimeout
        self.maxQueuedPerClient = maxQueuedPerClient
        self.maxQueuedTotal = maxQueuedTotal
    }

    /// The standard locations: `/etc/deskgate/policy.d`, `$XDG_CONFIG_HOME/deskgate/policy.toml`,
    /// `$XDG_STATE_HOME/deskgate/grants.json` (with the XDG fallbacks under `$HOME`).
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment,
                                systemPolicyDir: String? = nil, configDir: String? = nil, stateDir: String? = nil,
                                defaultPromptHelpers: [String]) -> BrokerConfig {
        let home = environment["HOME"] ?? "/"
        let config = configDir ?? (environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config") + "/deskgate"
        let state = stateDir ?? (environment["XDG_STATE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.local/state") + "/deskgate"
        return BrokerConfig(systemPolicyDir: systemPolicyDir ?? "/etc/deskgate/policy.d",
                            userPolicyFile: config + "/policy.toml", grantsFile: state + "/grants.json",
                            defaultPromptHelpers: defaultPromptHelpers)
    }
}

/// The connection of the registered prompt helper, implemented by the daemon.
extension PromptHelperChannel {
    public func clientsChanged(agents: Int) async {}
}

public protocol PromptHelperChannel: Sendable {
    /// The helper's verified identity (its connection id identifies the channel).
    var identity: ClientIdentity { get }
    /// Sends `agent.prompt` with `params` as a JSON-RPC request on the helper's own connection
    /// and returns the result of that request. Throws when the helper answers with an error or
    /// the connection fails. The broker enforces its own timeout as well.
    func prompt(_ params: JSONValue, timeout: Duration) async throws -> JSONValue
    /// Sends the notification `agent.cancel {prompt_id}`.
    func cancel(promptID: String) async
    /// Sends the notification `agent.clients {agents}`: how many other clients are connected (a
    /// helper with a desktop shows a Pause button while there are any).
    func clientsChanged(agents: Int) async
}

/// Where a process runs and when it started: what "may this process have been started by that
/// one" is decided on (see ``Provenance``). For clients and the helper the daemon reads it at
/// accept and trusts it only after the pidfd confirms the process is alive.
public struct ProcessOrigin: Sendable, Hashable {
    /// The cgroup path: the cgroup v2 line (`0::`) of `/proc/PID/cgroup`, or on a legacy system
    /// without one the named systemd hierarchy's line. Always starts with `/`.
    public var cgroup: String
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    public var startTime: UInt64

    public init(cgroup: String, startTime: UInt64) {
        self.cgroup = cgroup
        self.startTime = startTime
    }

    /// Reads `/proc/PID/cgroup` and `/proc/PID/stat`; nil if either is unreadable or malformed.
    /// Not pinned: callers that need it to describe one particular process check afterwards that
    /// the process still lives (a pidfd), or accept that a recycled pid answers for a new process.
    public static func read(pid: Int32) -> ProcessOrigin? {
        guard pid > 0,
              let cgroupText = try? FileIO.read("/proc/\(pid)/cgroup", limit: 65536),
              let cgroup = cgroup(fromCgroupText: String(decoding: cgroupText, as: UTF8.self)),
              let stat = try? FileIO.read("/proc/\(pid)/stat", limit: 4096),
              let start = startTime(fromStat: stat) else { return nil }
        return ProcessOrigin(cgroup: cgroup, startTime: start)
    }

    /// The cgroup v2 path (`0::PATH`); without that line, the named systemd v1 hierarchy's path
    /// (`N:name=systemd:PATH`), which systemd organises the same way. nil when neither is there.
    public static func cgroup(fromCgroupText text: String) -> String? {
        var named: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[2].hasPrefix("/") else { continue }
            if parts[0] == "0" && parts[1].isEmpty { return String(parts[2]) }
            if parts[1] == "name=systemd" { named = String(parts[2]) }
        }
        return named
    }

    /// Field 22 (starttime) of `/proc/PID/stat`, counted after the parenthesised command name,
    /// which may itself contain spaces and parentheses.
    public static func startTime(fromStat bytes: [UInt8]) -> UInt64? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// Whether this cgroup lies strictly below `other`'s (every cgroup but the root lies below `/`).
    public func isCgroup(strictlyBelow other: ProcessOrigin) -> Bool {
        if other.cgroup == "/" { return cgroup != "/" }
        return cgroup.hasPrefix(other.cgroup + "/")
    }
}

/// Process ancestry and origin, for "may the helper have started this app" and "may this client
/// have started the helper".
public protocol ProcessInspector: Sendable {
    /// Whether `pid` is a (strict) descendant of `ancestor`.
    func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool
    /// The cgroup and start time of `pid`, or nil when they cannot be read (e.g. it exited).
    func origin(of pid: Int32) -> ProcessOrigin?
}

/// Reads the parent chain from `/proc/PID/stat`.
public struct ProcfsInspector: ProcessInspector {
    public init() {}

    public func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool {
        guard pid > 0, ancestor > 0, pid != ancestor else { return false }
        var current = pid
        for _ in 0..<128 {
            guard let parent = Self.parent(of: current), parent > 0 else { return false }
            if parent == ancestor { return true }
            if parent == 1 { return ancestor == 1 }
            current = parent
        }
        return false
    }

    public func origin(of pid: Int32) -> ProcessOrigin? { ProcessOrigin.read(pid: pid) }

    /// The ppid field of /proc/PID/stat (the fourth, after the parenthesised command name).
    public static func parent(of pid: Int32) -> Int32? {
        guard let bytes = try? FileIO.read("/proc/\(pid)/stat", limit: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
    }
}

/// "May process B have been started by process A?", the rule that keeps an asker from being its
/// own approver: a helper is never sent a client's prompts if the client may have started it,
/// and an app the helper may have started (its dialogs) is hard-denied.
///
/// Parent pids alone are not enough: `setsid -f` or a double fork leaves the child with another
/// parent. But a child stays in its parent's cgroup unless someone moves it, and it starts after
/// its parent. So B may have been started by A when
/// * B descends from A by parent pids, or
/// * B's cgroup lies strictly below A's (A made a cgroup for it), or
/// * B shares A's cgroup and started no earlier than A (clock ticks; a tie counts as "may").
///
/// What cannot be read counts as "may" (fail closed). Processes in different, unnested cgroups
/// (a helper run as its own systemd unit or scope, an app in its own scope) are never related
/// by this rule, whatever their start times.
public enum Provenance: Sendable, Equatable {
    /// B descends from A by parent pids.
    case descendant
    /// B's cgroup lies strictly below A's.
    case cgroupBelow
    /// B shares A's cgroup and started no earlier than A.
    case sameCgroupLater
    /// The cgroup or start time of one of them is unknown.
    case unknown

    /// How B may have been started by A, or nil when it cannot have been (by this rule).
    public static func mayHaveStarted(_ child: (pid: Int32, origin: ProcessOrigin?), by parent: (pid: Int32, origin: ProcessOrigin?),
                                      inspector: any ProcessInspector) -> Provenance? {
        if inspector.isDescendant(child.pid, of: parent.pid) { return .descendant }
        guard let childOrigin = child.origin, let parentOrigin = parent.origin else { return .unknown }
        if childOrigin.isCgroup(strictlyBelow: parentOrigin) { return .cgroupBelow }
        if childOrigin.cgroup == parentOrigin.cgroup, childOrigin.startTime >= parentOrigin.startTime { return .sameCgroupLater }
        return nil
    }

    /// Why, for messages: "<B> descends from <A>" etc.
    func explanation(child: String, parent: String) -> String {
        switch self {
        case .descendant: "\(child) descends from \(parent)"
        case .cgroupBelow: "\(child) runs in a cgroup below \(parent)'s"
        case .sameCgroupLater: "\(child) runs in \(parent)'s cgroup and started after it"
        case .unknown: "the cgroup or start time of \(child) or \(parent) could not be read"
        }
    }
}

/// Things the broker reports for logs, the audit log and daemon.info.
public enum BrokerEvent: Sendable {
    case policyLoaded(path: String, layer: PolicyLayer, sha256: String, rules: Int)
    case policyError(path: String, layer: PolicyLayer, line: Int?, message: String)
    case grantsLoaded(path: String, count: Int)
    case grantsError(path: String, message: String)
    case grantCreated(RememberedGrant)
    case grantRevoked(RememberedGrant)
    case helperRegistered(ClientIdentity)
    case helperUnregistered(ClientIdentity)
    case promptSent(promptID: String, client: ClientIdentity, method: String)
    case promptEnded(promptID: String, outcome: String)
    /// The brake was pulled (`broker.pause` or `broker.halt`), or a kept pause was found at start-up.
    case paused(PauseState, restored: Bool)
    /// A person approved a task (`task.begin`); its JSON as `grants.list` shows it.
    case taskBegun(JSONValue)
    /// A task ended (by its client, by expiry, idleness or a limit, by revocation, halt, or its
    /// client going away).
    case taskEnded(id: String, why: TaskEnding, task: JSONValue)
    /// The session's screen was locked or unlocked.
    case sessionLock(locked: Bool)
    /// The pause was lifted (`broker.resume`, decided like any gated request).
    case resumed(by: JSONValue, pause: PauseState)
    /// Something that can change decisions changed (a reload, a grant created, revoked or
    /// expired): open event streams re-decide what they show.
    case decisionsChanged(generation: UInt64)
}

/// Effective `[audit]` settings after the layer rules: the admin layer wins; the user layer may
/// lengthen retention but never below 7 days or below the admin's value, and may raise but never
/// lower `max_bytes` below the admin's value.
public struct AuditSettings: Sendable, Hashable {
    public static let defaultRetentionDays = 30
    public static let minimumRetentionDays = 7

    public var retentionDays: Int
    /// nil: the audit module's default.
    public var maxBytes: Int64?

    public init(retentionDays: Int = AuditSettings.defaultRetentionDays, maxBytes: Int64? = nil) {
        self.retentionDays = retentionDays
        self.maxBytes = maxBytes
    }

    static func combine(admin: [AuditPolicy], user: AuditPolicy?) -> AuditSettings {
        let adminDays = admin.compactMap(\.retentionDays).max()
        let adminBytes = admin.compactMap(\.maxBytes).max()
        let floor = max(minimumRetentionDays, adminDays ?? minimumRetentionDays)
        let days = max(user?.retentionDays ?? adminDays ?? defaultRetentionDays, floor)
        var bytes = user?.maxBytes ?? adminBytes
        if let adminBytes, let chosen = bytes { bytes = max(chosen, adminBytes) }
        return AuditSettings(retentionDays: days, maxBytes: bytes)
    }

    public var json: JSONValue {
        ["retention_days": .int(Int64(retentionDays)), "max_bytes": maxBytes.map { .int($0) } ?? .null]
    }
}

/// What the last reload found, per file.
public struct PolicyStatus: Sendable, CustomStringConvertible {
    public struct FileStatus: Sendable {
        public var path: String
        public var layer: PolicyLayer
        public var loaded: Bool
        public var sha256: String?
        public var rules: Int
        public var error: String?

        public var json: JSONValue {
            var object: JSONObject = ["path": .string(path), "layer": .string(layer.rawValue), "loaded": .bool(loaded)]
            if let sha256 { object.append("sha256", .string(sha256)) }
            object.append("rules", .int(Int64(rules)))
            if let error { object.append("error", .string(error)) }
            return .object(object)
        }
    }

    public var files: [FileStatus]
    /// True when every file loaded; false means some layer denies everything.
    public var ok: Bool { files.allSatisfy { $0.loaded || $0.error == nil } }
    public var errors: [String] { files.compactMap(\.error) }

    public var json: JSONValue { ["ok": .bool(ok), "files": .array(files.map(\.json))] }

    /// One line per file for logs: `admin /etc/deskgate/policy.d/10.toml: 3 rules, sha256 ab12…`.
    public var description: String {
        files.map { file in
            let state: String
            if let error = file.error {
                state = "REJECTED (\(error)); this layer denies everything"
            } else if file.loaded {
                state = file.layer == .grants ? "\(file.rules) grants" : "\(file.rules) rules, sha256 \(file.sha256 ?? "-")"
            } else {
                state = "absent"
            }
            return "\(file.layer.rawValue) \(file.path): \(state)"
        }.joined(separator: "; ")
    }
}

/// Random identifiers from the system CSPRNG.
enum RandomID {
    static func hex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return Text.hex((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// 128 random bits.
    static func promptID() -> String { hex(bytes: 16) }
    static func grantID() -> String { "g-" + hex(bytes: 8) }
    static func taskID() -> String { "t-" + hex(bytes: 8) }
}
