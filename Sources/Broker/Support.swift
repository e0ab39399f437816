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
    /// Executables allowed to register as prompt helpers when no policy file sets `prompt_agents`.
    public var defaultPromptAgents: [String]
    /// How long a prompt may stay unanswered.
    public var promptTimeout: Duration
    /// How the broker waits (prompt timeouts). The daemon passes an event-loop timer: Swift 6.3's
    /// `Task.sleep` arms libdispatch's 1 Hz pool monitor for good.
    public var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    /// Requests that may wait behind a client's outstanding prompt.
    public var maxQueuedPerClient: Int
    /// Requests that may wait for prompts across all clients.
    public var maxQueuedTotal: Int

    public init(systemPolicyDir: String, userPolicyFile: String, grantsFile: String, defaultPromptAgents: [String],
                promptTimeout: Duration = .seconds(60), maxQueuedPerClient: Int = 8, maxQueuedTotal: Int = 64) {
        self.systemPolicyDir = systemPolicyDir
        self.userPolicyFile = userPolicyFile
        self.grantsFile = grantsFile
        self.defaultPromptAgents = defaultPromptAgents
        self.promptTimeout = promptTimeout
        self.maxQueuedPerClient = maxQueuedPerClient
        self.maxQueuedTotal = maxQueuedTotal
    }

    /// The standard locations: `/etc/deskgate/policy.d`, `$XDG_CONFIG_HOME/deskgate/policy.toml`,
    /// `$XDG_STATE_HOME/deskgate/grants.json` (with the XDG fallbacks under `$HOME`).
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment,
                                systemPolicyDir: String? = nil, configDir: String? = nil, stateDir: String? = nil,
                                defaultPromptAgents: [String]) -> BrokerConfig {
        let home = environment["HOME"] ?? "/"
        let config = configDir ?? (environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config") + "/deskgate"
        let state = stateDir ?? (environment["XDG_STATE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.local/state") + "/deskgate"
        return BrokerConfig(systemPolicyDir: systemPolicyDir ?? "/etc/deskgate/policy.d",
                            userPolicyFile: config + "/policy.toml", grantsFile: state + "/grants.json",
                            defaultPromptAgents: defaultPromptAgents)
    }
}

/// The connection of the registered prompt helper, implemented by the daemon.
public protocol PromptHelperChannel: Sendable {
    /// The helper's verified identity (its connection id identifies the channel).
    var identity: ClientIdentity { get }
    /// Sends `agent.prompt` with `params` as a JSON-RPC request on the helper's own connection
    /// and returns the result of that request. Throws when the helper answers with an error or
    /// the connection fails. The broker enforces its own timeout as well.
    func prompt(_ params: JSONValue, timeout: Duration) async throws -> JSONValue
    /// Sends the notification `agent.cancel {prompt_id}`.
    func cancel(promptID: String) async
}

/// Process ancestry, for "is this the helper's child" and "did this client spawn the helper".
public protocol ProcessInspector: Sendable {
    /// Whether `pid` is a (strict) descendant of `ancestor`.
    func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool
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

    /// The ppid field of /proc/PID/stat (the fourth, after the parenthesised command name).
    public static func parent(of pid: Int32) -> Int32? {
        guard let bytes = try? FileIO.read("/proc/\(pid)/stat", limit: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
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
}
