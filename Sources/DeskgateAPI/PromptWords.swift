/// Plain words for what prompts show: risk classes, methods and roles, the same in the daemon's
/// request sentences and in the prompt helper's task scopes.
public enum PromptWords {
    /// A risk class in words, e.g. "write: types into or changes the app"; an unknown class is
    /// sanitised and shown as it is.
    public static func riskClass(_ name: String) -> String {
        switch name {
        case "observe": "observe: sees what is on screen (names, roles, layout)"
        case "read": "read: reads text out of the app"
        case "act": "act: clicks, focuses or chooses in the app"
        case "write": "write: types into or changes the app"
        case "secret": "secret: fills a password from your keyring into the app"
        case "admin": "admin: reads deskgate's rules, grants or audit log"
        default: PromptText.sanitize(name, limit: 40)
        }
    }

    /// What a class or method lets a program do, as a verb phrase for a list ("type or change
    /// values"); nil for names this build does not know.
    public static func action(_ name: String) -> String? {
        switch name {
        case "observe", "tree.snapshot", "elements.find", "element.get", "elements.wait", "apps.list", "events.subscribe":
            "see what is on screen"
        case "read", "text.read": "read text"
        case "act": "click, focus or choose"
        case "write": "type or change values"
        case "admin": "read deskgate's rules, grants and audit log"
        case "element.activate": "press or click"
        case "element.focus": "move the focus"
        case "element.select": "choose options"
        case "element.scroll_into_view": "scroll"
        case "text.set", "field.fill", "text.insert": "type text"
        case "value.set": "set values"
        case "secret", "field.fill_secret": "fill passwords from your keyring"
        case "browser.navigate": "open web pages"
        default: nil
        }
    }

    /// An AT-SPI role as a person names it: "text" is a field, "push button" a button.
    public static func role(_ role: String) -> String {
        switch role {
        case "text", "entry": "field"
        case "password text": "password field"
        case "push button": "button"
        case "": "element"
        default: PromptText.sanitize(role, limit: 40)
        }
    }
}
