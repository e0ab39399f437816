import DeskgateAPI
import DeskgateClient
import JSONRPC

/// What a failed tool call tells the model: what happened, and what it or a person can do.
///
/// The first sentences are the bridge's, built from the error's code and `data` and the tool's
/// arguments. The daemon's own message follows in a fence as app content: it quotes names apps
/// chose (an element's label, an app's name, its action names), which must not read as
/// deskgate's words.
enum ErrorText {
    /// The request a denial was about, for the message.
    struct Subject {
        var tool: String
        var app: String?
        var field: String?
        var ref: String?
    }

    static func describe(_ error: any Error, subject: Subject, tool: ToolDefinition?) -> ToolOutcome {
        switch error {
        case let error as RPCError: return describe(error, subject: subject, tool: tool)
        case let error as DeskgateClientError:
            let text: String
            switch error {
            case .daemonNotRunning:
                text = "deskgate is not available: \(error.description) This MCP server stays up and reconnects on the next call."
            case .connectionClosed:
                let mutating = tool?.kind == .action
                text = "The connection to deskgated was lost"
                    + (mutating ? "; the action may or may not have happened (take a snapshot to check)." : ".")
                    + " The next call reconnects; if it fails too, the daemon is not running."
            case .timeout(let method):
                text = "deskgated did not answer \(method) in time; the app may be busy, or a person has not answered a prompt."
            case .io(let detail):
                text = "Could not talk to deskgated: \(detail)"
            }
            return ToolOutcome(text: text, isError: true)
        default:
            return ToolOutcome(text: "deskgate-mcp failed: \(error)", isError: true)
        }
    }

    /// Appended to the bridge's words when the daemon's message follows.
    static let messageFollows = " deskgate's own message follows as app content (it may quote names the app chose)."

    static func describe(_ error: RPCError, subject: Subject, tool: ToolDefinition?) -> ToolOutcome {
        let message = error.message
        var quotesMessage = true
        var text: String
        switch error.code {
        case .denied:
            text = denial(error, subject: subject)
        case .invalidParams:
            // The daemon's schema check: its own words about the tool's arguments.
            let param = error.data?["field"]?.stringValue
            let argument = param.flatMap { p in tool?.argumentName(forParam: p) ?? p }
            let prefix = "invalid params: \(param ?? ""): "
            let detail = message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message
            text = "Invalid arguments for \(subject.tool)" + (argument.map { ": '\($0)'" } ?? "") + ": \(detail)."
            quotesMessage = false
        case .appNotFound:
            text = "App not found. Call list_apps to see the running apps."
        case .elementNotFound where error.data?["reason"]?.stringValue == "changed":
            // The element changed between the permission decision and the action: nothing was done.
            let what = error.data?["what"]?.stringValue.map { " (its \($0.filter { $0.isLetter }))" } ?? ""
            text = "Nothing was done: the element changed between the permission check and the action\(what). Take a new snapshot, check that it is still the element you mean, and retry with its new ref."
        case .elementNotFound:
            text = "Element not found. It may have gone or changed since you saw it; take a new snapshot and use its refs."
        case .appNotResponding:
            text = "The app is not responding. Try again later; other apps still work."
        case .notSupported:
            text = "Not supported by this element."
        case .invalidValue:
            text = "Value not accepted."
        case .auditUnavailable:
            text = "deskgate refuses requests because its audit log cannot be written. A person must fix the audit log (see docs/operations.md)."
        case .busUnavailable:
            text = "The desktop's accessibility bus is unavailable."
        case .ambiguous:
            text = "Ambiguous: more than one app or field matches. Use an id or a ref to pick one; the candidates are in the daemon's message."
        case .secretUnavailable where error.data?["reason"]?.stringValue == "locked":
            text = "Nothing was filled: the keyring holding that item is locked. deskgate never unlocks it; ask the person to unlock their keyring, then retry."
        case .secretUnavailable where error.data?["reason"]?.stringValue == "failed":
            text = "Nothing was filled: the keyring (Secret Service) failed to answer. Try again later."
        case .secretUnavailable:
            text = "Nothing was filled: no keyring (Secret Service) is running in this desktop session, and deskgate does not start one. Ask the person to start or unlock their keyring."
        case .secretNotFound:
            text = "Nothing was filled: no keyring item matches. Ask the person for the item's exact label or attributes; you cannot list the keyring."
        case .limitReached:
            text = "deskgate refused the connection: a bound on connections or unfinished requests was reached. Close other connections and retry."
        case .methodNotFound:
            text = "This deskgated does not offer \(error.data?["method"]?.stringValue.map(Quote.quoted) ?? "that method") yet."
        case .requestCancelled:
            text = "The request was cancelled."
            quotesMessage = false
        default:
            text = "deskgate error \(error.code.rawValue)."
        }
        guard quotesMessage, !message.isEmpty else { return ToolOutcome(text: text, isError: true) }
        var shown = message
        if error.code == .ambiguous, let candidates = error.data?["candidates"]?.arrayValue, !candidates.isEmpty {
            shown += "\ncandidates:\n" + candidates.prefix(10).map { "- " + ($0.stringValue ?? compact($0)) }.joined(separator: "\n")
        }
        return ToolOutcome(text: text + messageFollows,
                           appContent: [AppContent(kind: .message, app: subject.app, text: shown)], isError: true)
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
            text = "Denied (\(Quote.quoted(reason))): deskgate-mcp may not \(what)."
        }
        return text
    }

    private static func verb(_ riskClass: RiskClass?) -> String {
        switch riskClass {
        case .observe: "observe"
        case .read: "read text in"
        case .act: "operate"
        case .write: "write to"
        case .secret: "fill a keyring secret into"
        case .admin: "administer"
        case .control: "resume"
        case nil: "use"
        }
    }

    /// The request's target in the model's own terms (its arguments), quoted.
    private static func target(_ subject: Subject) -> String {
        switch (subject.field, subject.app, subject.ref) {
        case let (field?, app?, _): "field \(Quote.quoted(field)) in \(Quote.quoted(app))"
        case let (nil, app?, ref?): "element [ref=\(Quote.bare(ref))] in \(Quote.quoted(app))"
        case let (nil, app?, nil): Quote.quoted(app)
        case let (_, nil, ref?): "element [ref=\(Quote.bare(ref))]"
        default: "this"
        }
    }

    static func compact(_ value: JSONValue) -> String { JSONWriter.string(value) }
}
