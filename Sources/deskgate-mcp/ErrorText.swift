import DeskgateAPI
import DeskgateClient
import JSONRPC

/// What a failed tool call tells the model: what happened, and what it or a person can do.
enum ErrorText {
    /// The request a denial was about, for the message.
    struct Subject {
        var tool: String
        var app: String?
        var field: String?
        var ref: String?
    }

    static func describe(_ error: any Error, subject: Subject, tool: ToolDefinition?) -> String {
        switch error {
        case let error as RPCError: return describe(error, subject: subject, tool: tool)
        case let error as DeskgateClientError:
            switch error {
            case .daemonNotRunning:
                return "deskgate is not available: \(error.description) This MCP server stays up and reconnects on the next call."
            case .connectionClosed:
                let mutating = tool?.kind == .action
                return "The connection to deskgated was lost"
                    + (mutating ? "; the action may or may not have happened (take a snapshot to check)." : ".")
                    + " The next call reconnects; if it fails too, the daemon is not running."
            case .timeout(let method):
                return "deskgated did not answer \(method) in time; the app may be busy, or a person has not answered a prompt."
            case .io(let detail):
                return "Could not talk to deskgated: \(detail)"
            }
        default:
            return "deskgate-mcp failed: \(error)"
        }
    }

    static func describe(_ error: RPCError, subject: Subject, tool: ToolDefinition?) -> String {
        let message = error.message
        switch error.code {
        case .denied:
            return denial(error, subject: subject)
        case .invalidParams:
            let param = error.data?["field"]?.stringValue
            let argument = param.flatMap { p in tool?.argumentName(forParam: p) ?? p }
            let prefix = "invalid params: \(param ?? ""): "
            let detail = message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message
            return "Invalid arguments for \(subject.tool)" + (argument.map { ": '\($0)'" } ?? "") + ": \(detail)."
        case .appNotFound:
            return "App not found: \(message). Call list_apps to see the running apps."
        case .elementNotFound where error.data?["reason"]?.stringValue == "changed":
            // The element changed between the permission decision and the action: nothing was done.
            return "Nothing was done: the element changed between the permission check and the action (\(message)). Take a new snapshot, check that it is still the element you mean, and retry with its new ref."
        case .elementNotFound:
            return "Element not found: \(message). It may have gone or changed since you saw it; take a new snapshot and use its refs."
        case .appNotResponding:
            return "The app is not responding: \(message). Try again later; other apps still work."
        case .notSupported:
            return "Not supported: \(message)."
        case .invalidValue:
            return "Value not accepted: \(message)."
        case .auditUnavailable:
            return "deskgate refuses requests because its audit log cannot be written: \(message). A person must fix the audit log (see docs/operations.md)."
        case .busUnavailable:
            return "The desktop's accessibility bus is unavailable: \(message)."
        case .ambiguous:
            var text = "Ambiguous: \(message)."
            if let candidates = error.data?["candidates"]?.arrayValue, !candidates.isEmpty {
                let names = candidates.prefix(10).map { $0.stringValue ?? compact($0) }
                text += " Candidates: " + names.joined(separator: "; ") + ". Use an id or a ref to pick one."
            }
            return text
        case .methodNotFound:
            return "This deskgated does not offer \(error.data?["method"]?.stringValue ?? "that method") yet: \(message)."
        case .requestCancelled:
            return "The request was cancelled."
        default:
            return "deskgate error \(error.code.rawValue): \(message)"
        }
    }

    /// A denial as a sentence the model can act on, plus what a person can do about it.
    static func denial(_ error: RPCError, subject: Subject) -> String {
        let reason = error.data?["reason"]?.stringValue ?? "policy"
        let rule = error.data?["rule"]?.stringValue
        let riskClass = error.data?["class"]?.stringValue.flatMap(RiskClass.init(rawValue:))
        let what = "\(verb(riskClass)) \(target(subject))"
        var text: String
        switch reason {
        case "policy":
            // A user rule said deny, or no rule matched and the default is deny: no prompt
            // was possible, so the way forward is a rule.
            if let rule {
                text = "Denied: rule '\(rule)' forbids deskgate-mcp to \(what). A person can change that rule if it is wrong; see docs/policy.md."
            } else {
                text = "Denied: no rule allows deskgate-mcp to \(what), and the policy's default is deny. A person can add a rule that allows it, or one that asks them each time; see docs/policy.md."
            }
        case "locked_down":
            text = "Denied: the administrator's policy forbids deskgate-mcp to \(what)"
                + (rule.map { " (rule '\($0)')" } ?? "") + ". Nobody can approve this from here."
        case "hard_deny":
            text = "Denied: deskgate never allows this (\(what)); secrets such as password fields and password managers are off limits to every client. No rule or approval can change it."
        case "user_denied":
            text = "Denied: a person declined the request to \(what). Do not retry it unless they ask you to."
        case "timeout":
            text = "Denied: nobody answered the approval prompt to \(what) in time. Ask the person to watch for deskgate's prompt, then try again."
        case "no_agent":
            text = "Denied: deskgate-mcp may \(what) only with a person's approval, and no prompt helper is running to ask them. A person can start `deskgate-prompt` (see docs/policy.md) or add a rule that allows it."
        case "would_prompt":
            text = "Denied: to \(what) needs a person's approval, and the request was marked non-interactive."
        case "rate_limited":
            text = "Denied: too many requests are waiting for a person's approval. Wait for the pending prompt to be answered."
        case "unidentified":
            text = "Denied: deskgate could not verify which program deskgate-mcp is (its executable could not be read, e.g. because it runs non-dumpable or in another user namespace), and it serves unidentified programs nothing. Retrying will not help; a person must run deskgate-mcp as an ordinary process of the desktop user."
        case "policy_error":
            text = "Denied: a deskgate policy file has an error, so everything is denied until a person fixes it (`deskgate policy check FILE` shows the problem)."
        default:
            text = "Denied (\(reason)): deskgate-mcp may not \(what)."
        }
        if !error.message.isEmpty { text += " deskgate said: \(error.message)" }
        return text
    }

    private static func verb(_ riskClass: RiskClass?) -> String {
        switch riskClass {
        case .observe: "observe"
        case .read: "read text in"
        case .act: "operate"
        case .write: "write to"
        case .admin: "administer"
        case nil: "use"
        }
    }

    private static func target(_ subject: Subject) -> String {
        switch (subject.field, subject.app, subject.ref) {
        case let (field?, app?, _): "field '\(field)' in '\(app)'"
        case let (nil, app?, ref?): "element \(ref) in '\(app)'"
        case let (nil, app?, nil): "'\(app)'"
        case let (_, nil, ref?): "element \(ref)"
        default: "this"
        }
    }

    static func compact(_ value: JSONValue) -> String { JSONWriter.string(value) }
}
