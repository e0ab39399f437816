import ATSPI
import DeskgateAPI
import JSONRPC

/// The one sentence a prompt says about a request, built from the resolved target: what, where
/// and how much, e.g. "Type 11 characters into the field «Name» of «gedit» (/usr/bin/gedit)".
///
/// Every name an app or a client chose (element and app names, option names, URLs) is
/// sanitised, bounded and fenced (`«…»`, ``PromptText/fence(_:limit:)``); the verified facts
/// (the app's executable, an origin read from the document) are not fenced. A value being typed
/// is never in it, only its length, and a password field's content never is.
enum PromptSentence {
    /// Longest names shown (characters, before the fence).
    static let nameLimit = 60
    static let urlLimit = 120
    static let exeLimit = 100

    /// The sentence for `method` on `target` with `params` (the request's validated params).
    static func make(method: String, riskClass: RiskClass, target: ResolvedTarget?, params: JSONObject) -> String {
        let element = target?.element
        let thing = element.map(describe) ?? "the app"
        var text: String
        switch method {
        case "element.activate":
            text = "\(verb(for: element)) \(thing)"
            if let action = params["action"]?.stringValue { text += " (its action \(PromptText.fence(action, limit: 40)))" }
        case "element.focus":
            text = "Move the keyboard focus to \(thing)"
        case "element.scroll_into_view":
            text = "Scroll \(thing) into view"
        case "element.select":
            if let option = params["option_name"]?.stringValue {
                text = "Choose \(PromptText.fence(option, limit: nameLimit)) in \(thing)"
            } else if let index = params["index"]?.intValue {
                text = "Choose option number \(index + 1) in \(thing)"
            } else {
                text = "Choose an option in \(thing)"
            }
        case "text.set":
            text = "Replace the text of \(thing) with \(characters(params))"
        case "field.fill":
            text = "Type \(characters(params)) into \(thing)"
        case "field.fill_secret":
            // The item's label is the keyring's (the person's own), yet any program of theirs
            // could have stored it: fenced like every other name.
            let item = target?.secretItem.map { PromptText.fence($0.label, limit: nameLimit) } ?? "a keyring item"
            text = "Fill the password \(item) from your keyring into \(thing) (the program never sees it)"
        case "text.insert":
            text = "Insert \(characters(params)) into \(thing)"
            if let at = params["at"]?.intValue { text += " at position \(at)" }
        case "value.set":
            text = "Set \(thing) to \(params["value"].map { JSONWriter.string($0) } ?? "a new value")"
        case "browser.navigate":
            text = "Open the web page \(PromptText.fence(params["url"]?.stringValue ?? "", limit: urlLimit)) in a new tab"
        case "tree.snapshot":
            text = element == nil ? "See everything on screen" : "See everything on screen inside \(thing)"
        case "elements.find":
            text = "Look for elements on screen" + lookFor(params)
        case "elements.wait":
            text = "Wait for an element on screen" + lookFor(params)
        case "element.get":
            text = "See the details of \(thing)" + (element?.isPassword == true ? "" : ", its text too where reading is allowed")
        case "text.read":
            text = "Read the text of \(thing)"
        case "audit.query":
            text = "Read deskgate's audit log (which programs did what, and when)"
        case "audit.verify":
            text = "Check deskgate's audit log for tampering"
        case "grants.list":
            text = "Read your deskgate rules and remembered grants"
        case "broker.resume":
            text = "Lift the pause: let agents observe, read and act in apps again, as the policy says"
        default:
            let what = PromptWords.action(method) ?? PromptWords.action(riskClass.rawValue) ?? "use"
            text = "\(what.prefix(1).uppercased())\(what.dropFirst()) (\(PromptText.sanitize(method, limit: 60)))"
            if element != nil { text += " on \(thing)" }
        }
        if let target, method != "audit.query", method != "audit.verify", method != "grants.list" {
            text += " " + app(target.app, after: element == nil ? "in" : "of")
            if let origin = element?.origin { text += ", on the web page of \(PromptText.sanitize(origin, limit: 80))" }
        }
        return text
    }

    /// "the field «Name»", "the button «Submit»", "an unnamed check box".
    static func describe(_ element: ElementTarget) -> String {
        let role = PromptWords.role(element.role)
        let name = element.displayName
        if name.isEmpty { return "an unnamed \(role)" }
        return "the \(role) \(PromptText.fence(name, limit: nameLimit))"
    }

    /// "«gedit» (/usr/bin/gedit)": the app's own name fenced, its verified executable after it.
    static func app(_ app: AppTarget, after preposition: String) -> String {
        var text = "\(preposition) \(PromptText.fence(app.name, limit: nameLimit))"
        text += " (" + (app.exe.map { PromptText.sanitize($0, limit: exeLimit) } ?? "executable unknown") + ")"
        return text
    }

    /// What pressing an element is called for its role.
    static func verb(for element: ElementTarget?) -> String {
        switch element?.role {
        case "link": "Follow"
        case "check box", "radio button", "toggle button", "check menu item", "radio menu item": "Toggle"
        case "menu item", "menu": "Choose"
        case "page tab": "Switch to"
        default: "Press"
        }
    }

    /// "11 characters", counted as a person would; never the characters themselves.
    static func characters(_ params: JSONObject) -> String {
        let count = params["value"]?.stringValue?.count ?? 0
        return count == 1 ? "1 character" : "\(count) characters"
    }

    /// What a find or wait looks for: " named «OK», with role button".
    static func lookFor(_ params: JSONObject) -> String {
        var parts: [String] = []
        if let role = params["role"]?.stringValue { parts.append("of role \(PromptText.fence(role, limit: 40))") }
        if let name = params["name"]?.stringValue { parts.append("named \(PromptText.fence(name, limit: nameLimit))") }
        if let name = params["name_contains"]?.stringValue { parts.append("with \(PromptText.fence(name, limit: nameLimit)) in its name") }
        return parts.isEmpty ? "" : " " + parts.joined(separator: ", ")
    }
}
