public import DeskgateAPI
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC

/// What a rule says about the requests it matches.
public enum RuleEffect: String, Sendable, Hashable, CaseIterable {
    case allow, ask, deny
}

/// Where a rule or grant comes from. Listed strongest first.
public enum PolicyLayer: String, Sendable, Hashable {
    /// `/etc/deskgate/policy.d/*.toml`: denies here can never be lifted.
    case admin
    /// `$XDG_CONFIG_HOME/deskgate/policy.toml`.
    case user
    /// Remembered prompt answers, written only by the broker.
    case grants
}

/// One `[[rule]]` table, validated and compiled.
public struct PolicyRule: Sendable, Hashable {
    public var id: String
    public var layer: PolicyLayer
    public var file: String
    public var line: Int
    public var effect: RuleEffect
    /// `"*"` in `actions`: every gated method.
    public var allActions: Bool
    public var actionClasses: Set<RiskClass>
    public var actionMethods: Set<String>
    public var clientExe: Glob?
    /// Glob on the interpreter's script path. Advisory (the process chose its command line), so it
    /// only ever narrows a rule.
    public var clientScript: Glob?
    public var app: Glob?
    public var appExe: Glob?
    public var role: String?
    public var name: Glob?
    /// Glob on the web origin (`scheme://host[:port]`) of the document holding the element.
    public var origin: Glob?
    /// `field.fill_secret`: the keyring item's exact label (not a pattern).
    public var secretItem: String?
    public var expires: Date?
    public var reason: String?

    /// Whether the rule applies to the request at `now`. An expired rule (now ≥ expires) never does.
    public func matches(_ request: BrokerRequest, now: Date) -> Bool {
        if request.riskClass == .control {
            // Lifting a pause: only a rule naming the method exactly.
            guard actionMethods.contains(request.method) else { return false }
        } else if request.riskClass == .secret {
            // A secret: only a rule naming the class or the method; "*" never covers it.
            guard actionClasses.contains(.secret) || actionMethods.contains(request.method) else { return false }
        } else if !allActions, !actionClasses.contains(request.riskClass), !actionMethods.contains(request.method) {
            return false
        }
        return matchesBeyondAction(request, now: now)
    }

    /// Everything but the action (the rule index already selected by action).
    func matchesBeyondAction(_ request: BrokerRequest, now: Date) -> Bool {
        if let expires, now >= expires { return false }
        if let clientExe, !clientExe.matches(request.client.exe) { return false }
        if let clientScript {
            guard let script = request.client.script, clientScript.matches(script) else { return false }
        }
        if let app {
            guard let appName = request.target?.appName, app.matches(appName) else { return false }
        }
        if let appExe {
            guard let exe = request.target?.appExe, appExe.matches(exe) else { return false }
        }
        if let role {
            guard let requestRole = request.target?.role, requestRole == role else { return false }
        }
        if let name {
            guard let elementName = request.target?.name, name.matches(elementName) else { return false }
        }
        if let origin {
            guard let requestOrigin = request.target?.origin, origin.matches(requestOrigin) else { return false }
        }
        if let secretItem {
            guard request.target?.secretItem == secretItem else { return false }
        }
        // A secret goes only to the web page a rule names: allowing one into a browser without
        // an origin would allow it into any page there, a phishing page too.
        if effect == .allow, request.riskClass == .secret, origin == nil, request.target?.origin != nil { return false }
        return true
    }

    /// The rule as listed by `grants.list`.
    public var json: JSONValue {
        var object: JSONObject = ["id": .string(id), "layer": .string(layer.rawValue), "file": .string(file),
                                  "line": .int(Int64(line)), "effect": .string(effect.rawValue)]
        var actions: [String] = allActions ? ["*"] : []
        actions += RiskClass.allCases.filter(actionClasses.contains).map(\.rawValue)
        actions += actionMethods.sorted()
        object.append("actions", JSONValue(actions))
        if let clientExe { object.append("client_exe", .string(clientExe.pattern)) }
        if let clientScript { object.append("client_script", .string(clientScript.pattern)) }
        if let app { object.append("app", .string(app.pattern)) }
        if let appExe { object.append("app_exe", .string(appExe.pattern)) }
        if let role { object.append("role", .string(role)) }
        if let name { object.append("name", .string(name.pattern)) }
        if let origin { object.append("origin", .string(origin.pattern)) }
        if let secretItem { object.append("secret_item", .string(secretItem)) }
        if let expires { object.append("expires", .string(Timestamp.rfc3339(expires))) }
        if let reason { object.append("reason", .string(reason)) }
        return .object(object)
    }
}

/// The `[audit]` table of one file.
public struct AuditPolicy: Sendable, Hashable {
    public var retentionDays: Int?
    public var maxBytes: Int64?
    public init(retentionDays: Int? = nil, maxBytes: Int64? = nil) {
        self.retentionDays = retentionDays
        self.maxBytes = maxBytes
    }
}

/// One validated policy file.
public struct PolicyFile: Sendable {
    public var path: String
    public var layer: PolicyLayer
    /// SHA-256 of the file's bytes, hex.
    public var sha256: String
    public var rules: [PolicyRule]
    /// `default`: what happens when no rule matches. nil = not set (the built-in default is ask).
    public var defaultEffect: RuleEffect?
    public var promptHelpers: [String]?
    public var sensitiveApps: [Glob]
    public var audit: AuditPolicy
    /// `when_locked`: what act and write requests get while the session is locked. nil = not set.
    public var whenLocked: WhenLocked? = nil
    /// `max_task_s` (admin layer only): the longest a task session may be approved for.
    public var maxTaskSeconds: Int? = nil
}

/// `when_locked`: while the session's screen is locked, `pause` (the default) denies act and
/// write requests with reason `session_locked` and shows no prompts; `allow` decides them as usual.
public enum WhenLocked: String, Sendable, Hashable {
    case pause, allow
}

/// Turns a policy file's text into a ``PolicyFile``, rejecting anything unknown or ill-typed.
public enum PolicyParser {
    static let topLevelKeys: Set<String> = ["default", "prompt_agents", "sensitive_apps", "rule", "audit", "when_locked", "max_task_s"]
    static let ruleKeys: Set<String> = [
        "id", "effect", "actions", "client_exe", "client_script", "app", "app_exe", "role", "name", "origin", "secret_item",
        "expires", "reason",
    ]
    static let auditKeys: Set<String> = ["retention_days", "max_bytes"]

    /// Names `actions` may use besides the risk classes: every gated method.
    static let gatedMethods: Set<String> = Set(DeskgateAPI.descriptors.filter { $0.riskClass != nil }.map(\.name))
    static let allMethods: Set<String> = Set(DeskgateAPI.descriptors.map(\.name))

    /// Parses and validates. `path` names the file in errors and in default rule ids.
    public static func parse(_ bytes: [UInt8], path: String, layer: PolicyLayer) throws(TOMLError) -> PolicyFile {
        let root = try TOMLParser.parse(bytes, file: path)
        func fail(_ line: Int, _ message: String) -> TOMLError { TOMLError(file: path, line: line, message: message) }

        for key in root.keys where !topLevelKeys.contains(key) {
            let hint = ruleKeys.contains(key) ? " (rule fields go inside a [[rule]] table)" : ""
            throw fail(root[key]!.line, "unknown key '\(key)'\(hint); allowed: \(topLevelKeys.sorted().joined(separator: ", "))")
        }

        var file = PolicyFile(path: path, layer: layer, sha256: SHA256Hex.digest(bytes), rules: [], defaultEffect: nil,
                              promptHelpers: nil, sensitiveApps: [], audit: AuditPolicy())

        if let entry = root["default"] {
            guard case .string(let text) = entry.value else { throw fail(entry.line, "'default' must be a string, not \(entry.value.typeName)") }
            guard text == "ask" || text == "deny" else { throw fail(entry.line, "'default' must be \"ask\" or \"deny\", not \"\(text)\"") }
            file.defaultEffect = RuleEffect(rawValue: text)
        }
        if let entry = root["max_task_s"] {
            guard case .integer(let seconds) = entry.value, seconds >= 60, seconds <= 28_800 else {
                throw fail(entry.line, "'max_task_s' must be an integer from 60 to 28800 (8 hours)")
            }
            guard layer == .admin else { throw fail(entry.line, "'max_task_s' belongs in the administrator's policy (/etc/deskgate/policy.d)") }
            file.maxTaskSeconds = Int(seconds)
        }
        if let entry = root["when_locked"] {
            guard case .string(let text) = entry.value, let value = WhenLocked(rawValue: text) else {
                throw fail(entry.line, "'when_locked' must be \"pause\" or \"allow\"")
            }
            file.whenLocked = value
        }
        if let entry = root["prompt_agents"] {
            let paths = try stringArray(entry, key: "prompt_agents", path: path)
            for agent in paths where !agent.hasPrefix("/") {
                throw fail(entry.line, "prompt_agents entries must be absolute executable paths: \"\(agent)\"")
            }
            file.promptHelpers = paths
        }
        if let entry = root["sensitive_apps"] {
            for pattern in try stringArray(entry, key: "sensitive_apps", path: path) {
                do { file.sensitiveApps.append(try Glob(pattern)) } catch { throw fail(entry.line, error.description) }
            }
        }
        if let entry = root["audit"] {
            guard case .table(let table) = entry.value else { throw fail(entry.line, "'audit' must be a table: write [audit]") }
            for key in table.keys where !auditKeys.contains(key) {
                throw fail(table[key]!.line, "unknown key '\(key)' in [audit]; allowed: \(auditKeys.sorted().joined(separator: ", "))")
            }
            if let days = table["retention_days"] {
                guard case .integer(let value) = days.value else { throw fail(days.line, "'retention_days' must be an integer") }
                guard value >= 1, value <= 36500 else { throw fail(days.line, "'retention_days' must be between 1 and 36500") }
                file.audit.retentionDays = Int(value)
            }
            if let bytes = table["max_bytes"] {
                guard case .integer(let value) = bytes.value else { throw fail(bytes.line, "'max_bytes' must be an integer") }
                guard value >= 1 << 20 else { throw fail(bytes.line, "'max_bytes' must be at least 1048576 (1 MiB)") }
                file.audit.maxBytes = value
            }
        }
        if let entry = root["rule"] {
            guard case .tableArray(let tables) = entry.value else {
                throw fail(entry.line, "rules are written as [[rule]] tables (double brackets)")
            }
            let base = Text.lastPathComponent(path)
            var seen: [String: Int] = [:]
            for (index, table) in tables.enumerated() {
                let rule = try parseRule(table, defaultID: "\(base)#\(index + 1)", path: path, layer: layer)
                if let earlier = seen[rule.id] {
                    throw fail(table.line, "rule id '\(rule.id)' is already used on line \(earlier)")
                }
                seen[rule.id] = table.line
                file.rules.append(rule)
            }
        }
        return file
    }

    static func stringArray(_ entry: TOMLEntry, key: String, path: String) throws(TOMLError) -> [String] {
        guard case .array(let items) = entry.value else {
            throw TOMLError(file: path, line: entry.line, message: "'\(key)' must be an array of strings, not \(entry.value.typeName)")
        }
        var strings: [String] = []
        for item in items {
            guard case .string(let text) = item else {
                throw TOMLError(file: path, line: entry.line, message: "'\(key)' must contain only strings, found \(item.typeName)")
            }
            strings.append(text)
        }
        return strings
    }

    static func parseRule(_ table: TOMLTable, defaultID: String, path: String, layer: PolicyLayer) throws(TOMLError) -> PolicyRule {
        func fail(_ line: Int, _ message: String) -> TOMLError { TOMLError(file: path, line: line, message: message) }
        for key in table.keys where !ruleKeys.contains(key) {
            throw fail(table[key]!.line, "unknown key '\(key)' in [[rule]]; allowed: \(ruleKeys.sorted().joined(separator: ", "))")
        }
        func string(_ key: String) throws(TOMLError) -> (String, Int)? {
            guard let entry = table[key] else { return nil }
            guard case .string(let text) = entry.value else {
                throw fail(entry.line, "'\(key)' must be a string, not \(entry.value.typeName)")
            }
            guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw fail(entry.line, "'\(key)' contains a control character")
            }
            return (text, entry.line)
        }
        func glob(_ key: String) throws(TOMLError) -> Glob? {
            guard let (text, line) = try string(key) else { return nil }
            do { return try Glob(text) } catch { throw fail(line, "'\(key)': \(error.description)") }
        }

        var id = defaultID
        if let (text, line) = try string("id") {
            guard !text.isEmpty, text.count <= 200 else { throw fail(line, "'id' must be 1 to 200 characters") }
            id = text
        }
        guard let (effectText, effectLine) = try string("effect") else {
            throw fail(table.line, "rule '\(id)' has no 'effect' (allow, ask or deny)")
        }
        guard let effect = RuleEffect(rawValue: effectText) else {
            throw fail(effectLine, "'effect' must be \"allow\", \"ask\" or \"deny\", not \"\(effectText)\"")
        }
        guard let actionsEntry = table["actions"] else {
            throw fail(table.line, "rule '\(id)' has no 'actions' (risk classes such as \"observe\", method names, or \"*\")")
        }
        let actions = try stringArray(actionsEntry, key: "actions", path: path)
        guard !actions.isEmpty else { throw fail(actionsEntry.line, "'actions' must not be empty") }
        var rule = PolicyRule(id: id, layer: layer, file: path, line: table.line, effect: effect, allActions: false,
                              actionClasses: [], actionMethods: [])
        for action in actions {
            if action == "*" {
                rule.allActions = true
            } else if action == RiskClass.control.rawValue {
                throw fail(actionsEntry.line, "the class 'control' cannot be named; a rule about lifting a pause names \"\(BrokerResume.name)\" exactly")
            } else if let riskClass = RiskClass(rawValue: action) {
                rule.actionClasses.insert(riskClass)
            } else if gatedMethods.contains(action) {
                rule.actionMethods.insert(action)
            } else if allMethods.contains(action) {
                throw fail(actionsEntry.line, "'\(action)' is never gated, so rules cannot name it")
            } else {
                throw fail(actionsEntry.line, "unknown action '\(action)'; use a risk class (\(RiskClass.allCases.filter { $0 != .control }.map(\.rawValue).joined(separator: ", "))), a method name, or \"*\"")
            }
        }
        rule.clientExe = try glob("client_exe")
        rule.clientScript = try glob("client_script")
        rule.app = try glob("app")
        rule.appExe = try glob("app_exe")
        rule.name = try glob("name")
        rule.origin = try glob("origin")
        if let (role, line) = try string("role") {
            guard !role.isEmpty else { throw fail(line, "'role' must not be empty") }
            rule.role = role
        }
        if let (reason, _) = try string("reason") { rule.reason = reason }
        try validateSecret(&rule, table: table, actionsLine: actionsEntry.line, fail: fail)
        if let entry = table["expires"] {
            guard case .dateTime(let date) = entry.value else {
                throw fail(entry.line, "'expires' must be a date-time such as 2026-12-31T00:00:00Z, not \(entry.value.typeName)")
            }
            rule.expires = date
        }
        return rule
    }

    /// `secret_item`, and what a rule about secrets must say: one that allows filling a secret
    /// names the item, the client's executable and the app's executable exactly, and nothing
    /// else in its actions.
    static func validateSecret(_ rule: inout PolicyRule, table: TOMLTable, actionsLine: Int,
                               fail: (Int, String) -> TOMLError) throws(TOMLError) {
        let aboutSecrets = rule.actionClasses.contains(.secret) || rule.actionMethods.contains(FieldFillSecret.name)
        if let entry = table["secret_item"] {
            guard case .string(let label) = entry.value, !label.isEmpty, label.count <= 4096 else {
                throw fail(entry.line, "'secret_item' must be a keyring item's label: a non-empty string")
            }
            guard aboutSecrets else {
                throw fail(entry.line, "'secret_item' applies only to rules whose actions are \"secret\" or \"\(FieldFillSecret.name)\"")
            }
            rule.secretItem = label
        }
        guard aboutSecrets, rule.effect == .allow else { return }
        let others = rule.allActions || rule.actionClasses.contains(where: { $0 != .secret })
            || rule.actionMethods.contains(where: { $0 != FieldFillSecret.name })
        if others {
            throw fail(actionsLine, "a rule that allows filling secrets names only \"secret\" or \"\(FieldFillSecret.name)\" in its actions")
        }
        guard rule.secretItem != nil else {
            throw fail(table.line, "a rule that allows filling secrets names the keyring item: add secret_item = \"<the item's label>\"")
        }
        guard rule.clientExe?.literal != nil else {
            throw fail(table.line, "a rule that allows filling secrets names the client's executable exactly (client_exe without wildcards)")
        }
        guard rule.appExe?.literal != nil else {
            throw fail(table.line, "a rule that allows filling secrets names the app's executable exactly (app_exe without wildcards)")
        }
    }
}
