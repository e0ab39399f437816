import DeskgateAPI
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Rules indexed by action and app, so a decision looks at a handful of candidates rather than
/// every rule. The index only narrows: every candidate is still matched in full.
struct RuleIndex: Sendable {
    private struct Bucket: Sendable {
        var byApp: [String: [Int]] = [:]
        var byAppExe: [String: [Int]] = [:]
        var rest: [Int] = []

        mutating func add(_ rule: PolicyRule, at index: Int) {
            if let literal = rule.app?.literal {
                byApp[literal, default: []].append(index)
            } else if let literal = rule.appExe?.literal {
                byAppExe[literal, default: []].append(index)
            } else {
                rest.append(index)
            }
        }
    }

    let rules: [PolicyRule]
    private var anyAction = Bucket()
    private var byClass: [RiskClass: Bucket] = [:]
    private var byMethod: [String: Bucket] = [:]

    init(_ rules: [PolicyRule]) {
        self.rules = rules
        for (index, rule) in rules.enumerated() {
            if rule.allActions {
                anyAction.add(rule, at: index)
                continue
            }
            for riskClass in rule.actionClasses { byClass[riskClass, default: Bucket()].add(rule, at: index) }
            for method in rule.actionMethods { byMethod[method, default: Bucket()].add(rule, at: index) }
        }
    }

    /// Adds every matching rule to `matches`. Rules come from the buckets of the request's
    /// class and method, so their action always matches and only the rest is checked.
    func collect(_ request: BrokerRequest, now: Date, into matches: inout RuleMatches) {
        func visit(_ bucket: Bucket, _ matches: inout RuleMatches) {
            if let app = request.target?.appName, let list = bucket.byApp[app] {
                for index in list where rules[index].matchesBeyondAction(request, now: now) { matches.add(rules[index]) }
            }
            if let exe = request.target?.appExe, let list = bucket.byAppExe[exe] {
                for index in list where rules[index].matchesBeyondAction(request, now: now) { matches.add(rules[index]) }
            }
            for index in bucket.rest where rules[index].matchesBeyondAction(request, now: now) { matches.add(rules[index]) }
        }
        // `control` (lifting a pause) is matched only by rules naming its method exactly, and
        // `secret` never by "*".
        if request.riskClass != .control {
            if request.riskClass != .secret { visit(anyAction, &matches) }
            if let bucket = byClass[request.riskClass] { visit(bucket, &matches) }
        }
        if let bucket = byMethod[request.method] { visit(bucket, &matches) }
    }

    /// Calls `body` for every rule that may match (duplicates possible), until it returns false.
    func forEachCandidate(_ request: BrokerRequest, _ body: (PolicyRule) -> Bool) {
        func visit(_ bucket: Bucket) -> Bool {
            if let app = request.target?.appName, let list = bucket.byApp[app] {
                for index in list where !body(rules[index]) { return false }
            }
            if let exe = request.target?.appExe, let list = bucket.byAppExe[exe] {
                for index in list where !body(rules[index]) { return false }
            }
            for index in bucket.rest where !body(rules[index]) { return false }
            return true
        }
        if request.riskClass != .control {
            if request.riskClass != .secret { guard visit(anyAction) else { return } }
            if let bucket = byClass[request.riskClass] { guard visit(bucket) else { return } }
        }
        if let bucket = byMethod[request.method] { _ = visit(bucket) }
    }
}

/// The matching rules of one evaluation, reduced to what decides: per effect, the rule with the
/// smallest (layer, id), so the answer never depends on file or rule order.
struct RuleMatches {
    var adminDeny: PolicyRule?
    var userDeny: PolicyRule?
    var ask: PolicyRule?
    var allow: PolicyRule?

    static func better(_ a: PolicyRule, than b: PolicyRule?) -> Bool {
        guard let b else { return true }
        if a.layer != b.layer { return a.layer == .admin }
        if a.id != b.id { return a.id < b.id }
        if a.file != b.file { return a.file < b.file }
        return a.line < b.line
    }

    mutating func add(_ rule: PolicyRule) {
        switch rule.effect {
        case .deny:
            if rule.layer == .admin {
                if Self.better(rule, than: adminDeny) { adminDeny = rule }
            } else if Self.better(rule, than: userDeny) {
                userDeny = rule
            }
        case .ask:
            if Self.better(rule, than: ask) { ask = rule }
        case .allow:
            if Self.better(rule, than: allow) { allow = rule }
        }
    }
}
