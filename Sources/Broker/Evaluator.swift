import DeskgateAPI
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import JSONRPC

/// What a decision needs to know that is not in the request or the policy: facts about
/// processes, read before evaluation so that evaluation itself reads nothing.
struct DecisionFacts: Sendable {
    /// The target app is on the sensitive list (by its name or executable).
    var sensitive = false
    /// How the target app may have been started by the registered helper (nil: it cannot).
    var appStartedByHelper: Provenance?
    /// How the registered helper may have been started by the requesting client (nil: it cannot).
    var helperStartedByClient: Provenance?
    /// The helper these facts were read for (its connection), so a change of helper is noticed.
    var helperConnection: UInt64?
}

/// The outcome of evaluating a request by rules and grants alone.
enum Evaluation: Sendable {
    case decided(Decision)
    /// A person must decide. `explicit`: the ask rule that demands it (no remembering).
    case ask(explicit: PolicyRule?)
}

/// Decides a request from the policy, the remembered grants and the facts: hard denies, a
/// broken layer, rules, grants, the default; and why no prompt could be shown. Pure: no clock
/// (``now`` is given), no files, no processes.
struct Evaluator {
    let policy: PolicySnapshot
    /// Why the grants file could not be read, if so: then everything is denied.
    let grantsFileError: String?
    let grantsFile: String
    let now: Date
    /// The brake, when pulled: observe, read, act and write are denied whatever the rules say.
    var pause: PauseState? = nil
    /// The session's screen is locked (and the policy pauses then): act and write are denied.
    var locked = false

    static func deny(_ request: BrokerRequest, _ reason: DenyReason, rule: PolicyRule? = nil, ruleID: String? = nil,
                     detail: String? = nil) -> Decision {
        var decision = Decision(effect: .deny, reason: reason, ruleID: rule?.id ?? ruleID, request: request,
                                ruleReason: rule?.reason, detail: detail)
        decision.validUntil = rule?.expires
        return decision
    }

    static func allow(_ request: BrokerRequest, rule: PolicyRule? = nil, grant: RememberedGrant? = nil) -> Decision {
        var decision = Decision(effect: .allow, ruleID: rule?.id, grantID: grant?.id, request: request)
        decision.validUntil = rule?.expires ?? grant?.expires
        return decision
    }

    /// The hard denies no rule or prompt can lift.
    func hardDeny(_ request: BrokerRequest, _ facts: DecisionFacts, helperPid: Int32?) -> Decision? {
        if !request.client.isIdentified { return Self.deny(request, .unidentified) }
        if facts.sensitive {
            let app = request.target?.appName ?? request.target?.appExe ?? "this app"
            return Self.deny(request, .hardDeny,
                             detail: "'\(JSONWriter.escapedForMessage(app))' is a sensitive app (password manager, credential or polkit prompt, keyring, lock screen or screensaver), which deskgate never touches")
        }
        if request.riskClass == .read || request.method == TextRead.name, request.target?.role == "password text" {
            return Self.deny(request, .hardDeny, detail: "the text of password fields is never read")
        }
        // The helper's own windows, and any app it may have started (a zenity dialog, also one it
        // detached with setsid): an agent must never click "Allow" through AT-SPI.
        if let helperPid, let appPid = request.target?.appPid {
            if appPid == helperPid {
                return Self.deny(request, .hardDeny, detail: "the prompt helper's windows cannot be accessed")
            }
            if let how = facts.appStartedByHelper {
                return Self.deny(request, .hardDeny,
                                 detail: "the app may have been started by the prompt helper (\(how.explanation(child: "it", parent: "the helper"))), and the helper's windows and those of processes it started cannot be accessed")
            }
        }
        return nil
    }

    /// Decides from rules and grants alone.
    /// `grantMethods`: other methods whose remembered grants (with this request's client and
    /// target) also allow it (standing questions, see ``StandingQuestion``).
    func evaluate(_ request: BrokerRequest, _ facts: DecisionFacts, helperPid: Int32?, grants: GrantTable,
                  grantMethods: Set<String> = []) -> Evaluation {
        if let denied = hardDeny(request, facts, helperPid: helperPid) { return .decided(denied) }
        if let pause, request.riskClass.isPausable {
            return .decided(Self.deny(request, .paused, detail: Self.pauseDetail(pause)))
        }
        if locked, policy.whenLocked == .pause, request.riskClass.isMutating {
            return .decided(Self.deny(request, .sessionLocked))
        }
        if !policy.loaded {
            return .decided(Self.deny(request, .policyError, detail: "the policy has not been loaded yet"))
        }
        if let failure = policy.admin.failures.first {
            return .decided(Self.deny(request, .policyError, detail: "the administrator's policy \(failure.path) failed to load (\(failure.line.map { "line \($0): " } ?? "")\(failure.message))"))
        }
        if let failure = policy.user.failures.first {
            return .decided(Self.deny(request, .policyError, detail: "the user policy \(failure.path) failed to load (\(failure.line.map { "line \($0): " } ?? "")\(failure.message))"))
        }
        if let error = grantsFileError {
            return .decided(Self.deny(request, .policyError, detail: "the remembered-grants file \(grantsFile) is corrupt (\(error)); 'deskgate grants revoke-all' resets it"))
        }

        var matches = RuleMatches()
        policy.admin.index.collect(request, now: now, into: &matches)
        policy.user.index.collect(request, now: now, into: &matches)
        if let rule = matches.adminDeny { return .decided(Self.deny(request, .lockedDown, rule: rule)) }
        if let rule = matches.userDeny { return .decided(Self.deny(request, .policy, rule: rule)) }
        if let rule = matches.ask { return .ask(explicit: rule) }
        if let rule = matches.allow { return .decided(Self.allow(request, rule: rule)) }
        // Lifting a pause is never remembered and never follows the default: a person decides.
        if request.riskClass == .control { return .ask(explicit: nil) }
        // A secret is never remembered: a rule naming the item, or a person, each time.
        if request.riskClass == .secret {
            return policy.defaultEffect == .deny
                ? .decided(Self.deny(request, policy.defaultFromAdmin ? .lockedDown : .policy))
                : .ask(explicit: nil)
        }

        if let grant = grants.covering(request, now: now) { return .decided(Self.allow(request, grant: grant)) }
        for method in grantMethods.sorted() where method != request.method {
            var alternative = request
            alternative.method = method
            if let grant = grants.covering(alternative, now: now) {
                return .decided(Self.allow(request, grant: grant))
            }
        }
        if policy.defaultEffect == .deny {
            return .decided(Self.deny(request, policy.defaultFromAdmin ? .lockedDown : .policy))
        }
        return .ask(explicit: nil)
    }

    /// "since 10:02:03Z by /usr/bin/deskgate: reason «…»" for the paused denial.
    static func pauseDetail(_ pause: PauseState) -> String {
        var text = "since \(Timestamp.rfc3339(pause.since))"
        if let exe = pause.by["exe"]?.stringValue { text += " by \(exe)" }
        if let reason = pause.reason { text += ", reason given: \(JSONWriter.escapedForMessage(reason, limit: 200))" }
        return text
    }

    /// Why no prompt can be shown for this client right now, if so.
    static func promptBlocker(_ request: BrokerRequest, helper: ClientIdentity?, _ facts: DecisionFacts) -> String? {
        guard let helper else { return "no prompt helper is registered" }
        if helper.pid == request.client.pid || helper.connectionID == request.client.connectionID {
            return "the prompt helper cannot approve its own requests"
        }
        if let how = facts.helperStartedByClient {
            return "the registered prompt helper may have been started by the requesting client itself (\(how.explanation(child: "the helper", parent: "the client"))), so it cannot approve that client's requests; run the helper in a cgroup of its own (deskgate-prompt.service, or systemd-run --user --scope)"
        }
        return nil
    }
}
