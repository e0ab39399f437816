public import DeskgateAPI
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC

/// Why a request was denied. The raw values are the wire's `data.reason`.
public enum DenyReason: String, Sendable, Hashable, CaseIterable {
    /// A user rule or the user's default said deny.
    case policy
    /// The admin layer denies it; no prompt is ever shown.
    case lockedDown = "locked_down"
    /// Denied in code: password text, the prompt helper's windows, sensitive apps.
    case hardDeny = "hard_deny"
    /// The person answered deny.
    case userDenied = "user_denied"
    /// Nobody answered the prompt in time.
    case timeout
    /// A prompt was needed but no usable helper is registered (or it failed or went away).
    case noHelper = "no_agent"
    /// A prompt was needed and the request said `"interactive": false`.
    case wouldPrompt = "would_prompt"
    /// Too many requests from this client are waiting for a prompt.
    case rateLimited = "rate_limited"
    /// A policy or grants file failed to load; that layer denies everything.
    case policyError = "policy_error"
    /// The client cancelled the request (rpc.cancel) or went away; answered with -32800.
    case cancelled
    /// The daemon could not read the client's executable (`/proc/PID/exe`), so it cannot tell
    /// who is asking; such a client is served nothing that is gated.
    case unidentified
    /// Someone pulled the brake (`broker.pause`); nothing is observed, read or done until a
    /// person resumes.
    case paused
    /// The session's screen is locked (`when_locked = "pause"`, the default): no act or write
    /// request runs and no prompt is shown until it is unlocked.
    case sessionLocked = "session_locked"
}

/// The broker's answer for one request.
public struct Decision: Sendable {
    public enum Effect: String, Sendable, Hashable {
        case allow, ask, deny
    }

    /// `decide` only returns allow or deny; `check` may return ask.
    public var effect: Effect
    public var reason: DenyReason?
    /// The rule that determined the result, if one did.
    public var ruleID: String?
    /// The remembered grant that allowed it, or the grant a prompt answer created.
    public var grantID: String?
    /// The task session that allowed it (``Broker/beginTask(_:client:)``).
    public var taskID: String?
    public var method: String
    public var riskClass: RiskClass
    /// Whether a person was asked.
    public var prompted: Bool = false
    public var promptID: String?
    /// The helper's answer, when prompted.
    public var choice: String?
    /// When a standing decision (a rule's or grant's, no prompt) stops holding by the clock: the
    /// determining rule's or grant's expiry. Nil: until the policy or grants change.
    public var validUntil: Date?
    /// The request decided, kept to build ``message`` only when someone reads it.
    let request: BrokerRequest
    /// The determining rule's `reason`, and extra detail for the message.
    var ruleReason: String?
    var detail: String?

    init(effect: Effect, reason: DenyReason? = nil, ruleID: String? = nil, grantID: String? = nil, request: BrokerRequest,
         ruleReason: String? = nil, detail: String? = nil) {
        self.effect = effect
        self.reason = reason
        self.ruleID = ruleID
        self.grantID = grantID
        self.method = request.method
        self.riskClass = request.riskClass
        self.request = request
        self.ruleReason = ruleReason
        self.detail = detail
    }

    /// A denial for when no broker is there to decide: nothing is allowed.
    public static func unavailable(_ request: BrokerRequest) -> Decision {
        Decision(effect: .deny, reason: .policyError, request: request, detail: "no permission broker is configured")
    }

    /// Denied because the client's process exec'd another program since it connected: the
    /// daemon drops such a connection after replying.
    public var execChanged = false

    /// What a person or language model can do about it (built on first use: most decisions are
    /// never explained to anyone).
    public var message: String {
        switch effect {
        case .deny:
            return DenialText.message(reason ?? .policy, request, rule: ruleID, ruleReason: ruleReason, detail: detail)
        case .ask:
            return "A person will be asked to approve \(DenialText.action(request))."
        case .allow:
            if let ruleID, choice == nil { return "Allowed by rule '\(ruleID)'." }
            if let grantID, !prompted { return "Allowed by remembered grant \(grantID)." }
            if let taskID { return "Allowed inside task \(taskID), which the person at the desktop approved." }
            return "Allowed by the person at the desktop (\(choice ?? "approved"))."
        }
    }

    /// `{effect, reason?, rule?, grant?, class, prompt_id?, choice?}` for audit records and broker.check.
    public var json: JSONValue {
        var object: JSONObject = ["effect": .string(effect.rawValue)]
        if let reason { object.append("reason", .string(reason.rawValue)) }
        object.append("rule", JSONValue(ruleID))
        if let grantID { object.append("grant", .string(grantID)) }
        if let taskID { object.append("task", .string(taskID)) }
        object.append("class", .string(riskClass.rawValue))
        if let promptID { object.append("prompt_id", .string(promptID)) }
        if let choice { object.append("choice", .string(choice)) }
        if execChanged { object.append("detail", "exec_after_connect") }
        return .object(object)
    }

    /// The error to send for a denial (-32001 with `{reason, rule?, class}`), or -32800 for a
    /// cancelled request; nil when allowed.
    public var rpcError: RPCError? {
        guard effect == .deny else { return nil }
        if reason == .cancelled { return .cancelled }
        var data: JSONObject = ["reason": .string((reason ?? .policy).rawValue)]
        if let ruleID { data.append("rule", .string(ruleID)) }
        data.append("class", .string(riskClass.rawValue))
        if execChanged { data.append("detail", "exec_after_connect") }
        return RPCError(.denied, message, data: .object(data))
    }
}

/// Builds the messages denials carry. They name who, what and where, and say what can be done.
enum DenialText {
    static func who(_ request: BrokerRequest) -> String {
        let exe = request.client.exe.isEmpty ? "an unidentified client (pid \(request.client.pid))" : request.client.exe
        if let script = request.client.script { return "\(exe) (script \(script))" }
        return exe
    }

    static func whereText(_ request: BrokerRequest) -> String {
        var text = ""
        if let app = request.target?.appName ?? request.target?.appExe { text = "'\(JSONWriter.escapedForMessage(app))'" }
        if let name = request.target?.name {
            let role = request.target?.role.map { "\($0) " } ?? ""
            text += text.isEmpty ? "\(role)'\(JSONWriter.escapedForMessage(name))'" : " (\(role)'\(JSONWriter.escapedForMessage(name))')"
        }
        return text.isEmpty ? "the desktop" : text
    }

    static func action(_ request: BrokerRequest) -> String {
        "\(who(request)) to \(request.riskClass.verbPhrase) \(whereText(request)) (\(request.method))"
    }

    static let docs = "see docs/policy.md"

    static func message(_ reason: DenyReason, _ request: BrokerRequest, rule: String? = nil, ruleReason: String? = nil,
                        detail: String? = nil) -> String {
        let because = ruleReason.map { " Reason given: \(JSONWriter.escapedForMessage($0, limit: 200))." } ?? ""
        switch reason {
        case .policy:
            if let detail, rule == nil {
                return "Denied: \(detail)."
            }
            if let rule {
                return "Denied: rule '\(rule)' forbids \(action(request)).\(because) Change or remove that rule in the user policy if this is wrong; \(docs)."
            }
            return "Denied: no rule allows \(action(request)) and the policy default is deny. Add an allow or ask rule to the user policy; \(docs)."
        case .lockedDown:
            if let rule {
                return "Denied: the administrator's rule '\(rule)' forbids \(action(request)).\(because) Neither a prompt nor a user rule can change this; ask the administrator."
            }
            return "Denied: the administrator's policy denies everything it does not allow, and no rule allows \(action(request)). Neither a prompt nor a user rule can change this; ask the administrator."
        case .hardDeny:
            return "Denied: \(detail ?? "this is never allowed"). No rule or prompt can allow it."
        case .userDenied:
            return "Denied: the person at the desktop declined \(action(request)). Do not repeat the request unless they ask you to."
        case .timeout:
            return "Denied: nobody answered the prompt for \(action(request)) in time. Retry when someone is at the desktop, or add a rule; \(docs)."
        case .noHelper:
            return "Denied: \(action(request)) needs a person's approval, but \(detail ?? "no prompt helper is registered"). Start deskgate-prompt in the desktop session, or add a rule; \(docs)."
        case .wouldPrompt:
            return "Denied without asking: \(action(request)) needs a person's approval and the request set interactive=false. Retry with interactive=true while someone can answer, or add a rule; \(docs)."
        case .rateLimited:
            return "Denied: too many requests from this client are already waiting for approval. Wait for the pending prompt to be answered before sending more."
        case .policyError:
            return "Denied: \(detail ?? "a policy file failed to load"), so that layer denies everything until it is fixed. Fix the file and reload the daemon (SIGHUP); 'deskgate policy check FILE' shows the error."
        case .cancelled:
            return "request cancelled"
        case .paused:
            return "Denied: deskgate is paused\(detail.map { " (\($0))" } ?? ""). Nothing is observed, read or done for any client until the person at the desktop resumes it ('deskgate resume'). Stop and wait; do not retry."
        case .sessionLocked:
            return "Denied: the screen is locked, and while it is deskgate neither acts nor writes in apps nor asks anyone (when_locked = \"pause\"; \(action(request))). Retry after the person has unlocked it."
        case .unidentified:
            return "Denied: deskgate could not verify which program this client (pid \(request.client.pid)) is: its executable (/proc/\(request.client.pid)/exe) could not be read, as happens when a process makes itself non-dumpable or runs in another user namespace. Unidentified clients are refused every gated request; connect from an ordinary process of the same user."
        }
    }
}
