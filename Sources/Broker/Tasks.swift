public import DeskgateAPI
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC

/// One entry of a task's scope: the same fields as a policy rule, but `app_exe` is required and
/// exact (an app's name is its own choice), and `actions` names classes or methods explicitly.
public struct TaskScopeEntry: Sendable, Hashable {
    public var actionClasses: Set<RiskClass>
    public var actionMethods: Set<String>
    public var appExe: String
    public var app: Glob?
    public var role: String?
    public var name: Glob?
    public var origin: Glob?
    /// How many counted requests (act, write) this entry allows; nil: only the task's limit.
    public var max: Int?

    /// Parses and checks one entry of `task.begin`'s `scope`. `field` names it in errors.
    public init(json: JSONValue, field: String) throws(RPCError) {
        guard let object = json.objectValue else { throw bad("must be an object", field: field) }
        let known: Set<String> = ["actions", "app_exe", "app", "role", "name", "origin", "max"]
        if let unknown = object.members.map(\.key).first(where: { !known.contains($0) }) {
            throw bad("unknown key '\(unknown)'", field: "\(field).\(unknown)")
        }
        guard let actions = object["actions"]?.arrayValue, !actions.isEmpty else {
            throw bad("must be a non-empty list of risk classes or method names", field: "\(field).actions")
        }
        actionClasses = []
        actionMethods = []
        for action in actions {
            guard let text = action.stringValue else { throw bad("must be strings", field: "\(field).actions") }
            if let riskClass = RiskClass(rawValue: text), riskClass <= .write {
                actionClasses.insert(riskClass)
            } else if let descriptor = DeskgateAPI.descriptor(named: text), case .gated(let riskClass) = descriptor.gating,
                      riskClass <= .write {
                actionMethods.insert(text)
            } else {
                throw bad("'\(text)' is not one of observe, read, act, write or a method of theirs (no \"*\", secret, admin or control)", field: "\(field).actions")
            }
        }
        guard let exe = object["app_exe"]?.stringValue, exe.hasPrefix("/"), !exe.contains("*"), !exe.contains("?") else {
            throw bad("required: the app's executable, an absolute path (no wildcards)", field: "\(field).app_exe")
        }
        appExe = exe
        func glob(_ key: String) throws(RPCError) -> Glob? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue, !text.isEmpty, text.count <= 256 else {
                throw bad("must be a non-empty string of at most 256 characters", field: "\(field).\(key)")
            }
            do { return try Glob(text) } catch { throw bad("\(error)", field: "\(field).\(key)") }
        }
        app = try glob("app")
        name = try glob("name")
        origin = try glob("origin")
        role = object["role"]?.stringValue
        if let value = object["max"], value != .null {
            guard let max = value.intValue, max >= 1, max <= 100_000 else {
                throw bad("must be an integer from 1 to 100000", field: "\(field).max")
            }
            self.max = Int(max)
        }
        rule = Self.makeRule(self)
    }

    /// The entry as a policy rule (effect allow), so that it matches exactly as a rule would.
    private(set) var rule = PolicyRule(id: "task", layer: .grants, file: "", line: 0, effect: .allow, allActions: false,
                                       actionClasses: [], actionMethods: [])

    private static func makeRule(_ entry: TaskScopeEntry) -> PolicyRule {
        let (actionClasses, actionMethods, appExe, app, role, name, origin) =
            (entry.actionClasses, entry.actionMethods, entry.appExe, entry.app, entry.role, entry.name, entry.origin)
        var rule = PolicyRule(id: "task", layer: .grants, file: "", line: 0, effect: .allow, allActions: false,
                              actionClasses: actionClasses, actionMethods: actionMethods)
        rule.appExe = try? Glob(appExe)
        rule.app = app
        rule.role = role
        rule.name = name
        rule.origin = origin
        return rule
    }

    public var json: JSONValue {
        var object: JSONObject = ["actions": JSONValue(actionClasses.map(\.rawValue).sorted() + actionMethods.sorted()),
                                  "app_exe": .string(appExe)]
        if let app { object.append("app", .string(app.pattern)) }
        if let role { object.append("role", .string(role)) }
        if let name { object.append("name", .string(name.pattern)) }
        if let origin { object.append("origin", .string(origin.pattern)) }
        if let max { object.append("max", JSONValue(max)) }
        return .object(object)
    }
}

private func bad(_ detail: String, field: String) -> RPCError { .invalidParams(field: field, detail) }

/// What a client asks a person to approve once (`task.begin`).
public struct TaskRequest: Sendable {
    public var title: String
    public var scope: [TaskScopeEntry]
    public var expiresIn: Duration
    public var idle: Duration?
    public var maxActions: Int?

    public init(title: String, scope: [TaskScopeEntry], expiresIn: Duration, idle: Duration?, maxActions: Int?) {
        self.title = title
        self.scope = scope
        self.expiresIn = expiresIn
        self.idle = idle
        self.maxActions = maxActions
    }

    /// The longest a task may run.
    public static let maximumLifetime: Duration = .seconds(8 * 3600)
}

/// A task a person approved: requests of its client process inside its scope are allowed
/// without prompts until it ends, expires, goes idle or reaches a limit. Never persisted.
struct TaskSession: Sendable {
    /// What never changes once approved, behind one reference: a decision looks at every task of
    /// its client, and copying this struct then costs two retains, not twenty.
    final class Fixed: Sendable {
        let id: String
        let title: String
        let scope: [TaskScopeEntry]
        /// The scope entries as rules, matched as a policy rule would be.
        let rules: [PolicyRule]
        let client: ClientIdentity
        let created: Date
        let expires: Date
        let idle: TimeInterval?
        let maxActions: Int?

        init(id: String, title: String, scope: [TaskScopeEntry], client: ClientIdentity, created: Date, expires: Date,
             idle: TimeInterval?, maxActions: Int?) {
            (self.id, self.title, self.scope, self.rules, self.client) = (id, title, scope, scope.map(\.rule), client)
            (self.created, self.expires, self.idle, self.maxActions) = (created, expires, idle, maxActions)
        }
    }

    let fixed: Fixed
    var id: String { fixed.id }
    var title: String { fixed.title }
    var scope: [TaskScopeEntry] { fixed.scope }
    /// The client process: pid and start time (one process for good), and the connection that
    /// began it (the task ends when it closes, as it does when the process exits).
    var client: ClientIdentity { fixed.client }
    var created: Date { fixed.created }
    var expires: Date { fixed.expires }
    var idle: TimeInterval? { fixed.idle }
    var maxActions: Int? { fixed.maxActions }
    var lastUsed: Date
    var used = 0
    var usedPerEntry: [Int]
    /// How many requests it covered, counted or not.
    var covered = 0

    init(id: String, title: String, scope: [TaskScopeEntry], client: ClientIdentity, created: Date, expires: Date,
         idle: TimeInterval?, maxActions: Int?, lastUsed: Date, usedPerEntry: [Int]) {
        fixed = Fixed(id: id, title: title, scope: scope, client: client, created: created, expires: expires, idle: idle,
                      maxActions: maxActions)
        self.lastUsed = lastUsed
        self.usedPerEntry = usedPerEntry
    }

    /// Whether `request` comes from this task's client process.
    func isOwn(_ client: ClientIdentity) -> Bool {
        client.pid == self.client.pid && client.origin?.startTime != nil
            && client.origin?.startTime == self.client.origin?.startTime && client.uid == self.client.uid
    }

    /// Why it is over at `now`, if it is.
    func ended(at now: Date) -> TaskEnding? {
        if now >= expires { return .expired }
        if let idle, now.timeIntervalSince(lastUsed) >= idle { return .idle }
        if let maxActions, used >= maxActions { return .maxActions }
        return nil
    }

    func json(now: Date) -> JSONValue {
        var object: JSONObject = [
            "task_id": .string(id), "title": .string(title), "client": client.json,
            "scope": .array(scope.map(\.json)), "created": .string(Timestamp.rfc3339(created, milliseconds: true)),
            "expires_at": .string(Timestamp.rfc3339(expires, milliseconds: true)),
            "last_used": .string(Timestamp.rfc3339(lastUsed, milliseconds: true)),
            "actions_used": JSONValue(used), "requests_covered": JSONValue(covered),
            "per_entry_used": .array(usedPerEntry.map { JSONValue($0) }),
        ]
        object.append("max_actions", maxActions.map { JSONValue($0) } ?? .null)
        object.append("idle_s", idle.map { JSONValue(Int($0)) } ?? .null)
        return .object(object)
    }
}

/// Why a task ended.
public enum TaskEnding: String, Sendable {
    case ended, expired, idle
    case maxActions = "max_actions"
    case revoked, halted
    case clientGone = "client_gone"
}

/// The live tasks.
struct TaskTable: Sendable {
    private(set) var tasks: [String: TaskSession] = [:]

    var count: Int { tasks.count }
    var all: [TaskSession] { tasks.values.sorted { $0.created < $1.created } }

    mutating func insert(_ task: TaskSession) { tasks[task.id] = task }

    mutating func remove(_ id: String) -> TaskSession? { tasks.removeValue(forKey: id) }

    /// Tasks begun on a connection that closed.
    mutating func removeConnection(_ connectionID: UInt64) -> [TaskSession] {
        let gone = tasks.values.filter { $0.client.connectionID == connectionID }
        for task in gone { tasks[task.id] = nil }
        return gone
    }

    mutating func removeAll() -> [TaskSession] {
        let all = Array(tasks.values)
        tasks = [:]
        return all
    }

    /// Tasks over by the clock or their limits at `now`, removed.
    mutating func removeEnded(at now: Date) -> [(TaskSession, TaskEnding)] {
        var ended: [(TaskSession, TaskEnding)] = []
        for task in tasks.values {
            if let why = task.ended(at: now) { ended.append((task, why)) }
        }
        for (task, _) in ended { tasks[task.id] = nil }
        return ended
    }

    /// The task of this request's client whose scope covers it, if any. `consume`: count it
    /// (act and write count against `max_actions` and the entry's `max`; observe and read do
    /// not) and mark the task used. An entry at its `max` covers nothing more.
    mutating func cover(_ request: BrokerRequest, now: Date, consume: Bool) -> (id: String, ended: TaskEnding?)? {
        let counted = request.riskClass == .act || request.riskClass == .write
        // Oldest first when one client holds several tasks (rare): which one counts is stable.
        var found: (id: String, created: Date, entry: Int)?
        for task in tasks.values where task.isOwn(request.client) && task.ended(at: now) == nil {
            if let found, found.created <= task.created { continue }
            let fixed = task.fixed
            for index in fixed.rules.indices where fixed.rules[index].matches(request, now: now) {
                if counted, let max = fixed.scope[index].max, task.usedPerEntry[index] >= max { continue }
                found = (task.id, task.created, index)
                break
            }
        }
        guard let found else { return nil }
        guard consume else { return (found.id, nil) }
        func count(_ task: inout TaskSession) -> TaskEnding? {
            task.lastUsed = now
            task.covered += 1
            if counted {
                task.used += 1
                task.usedPerEntry[found.entry] += 1
            }
            return task.ended(at: now)
        }
        return (found.id, count(&tasks[found.id]!))
    }
}
