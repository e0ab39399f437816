/// Why an accessibility operation failed. The daemon maps each case to its wire code in one
/// place (`Daemon/Handlers/AccessibilityErrors.swift`); nothing here knows JSON-RPC.
public enum AccessibilityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No accessibility bus can be reached (or the service was shut down).
    case busUnavailable(String)
    /// No app has this id or name. `someUnresponsive`: some apps did not answer, so the app may
    /// be one of them.
    case appNotFound(String, someUnresponsive: Bool)
    /// The app left the bus.
    case appGone(app: String)
    /// Several apps have this name.
    case ambiguousApp(String, candidates: [AppCandidate])
    /// The ref is unknown, dropped from the table, or its element vanished or is defunct.
    case elementGone(String)
    /// The element (or its app) is no longer the one that was seen or decided on: its role, its
    /// name or label, or the app's process changed. Nothing was done.
    case changed(ChangeDetail)
    /// No editable field has this name or label.
    case fieldNotFound(String)
    /// Several editable fields have this name or label.
    case ambiguousField(String, candidates: [FieldCandidate])
    /// The app did not answer in time; it is treated as hung until it answers a ping.
    case notResponding(app: String, name: String)
    /// The request's own deadline ran out (says nothing about the app).
    case deadlineReached
    /// The element lacks the interface or action. `actions`: the ones it has, when relevant.
    case notSupported(String, actions: [String]? = nil)
    /// The app answered the call but did nothing: the element's text (or state) is as it was.
    case ignored(String)
    /// The value is not acceptable for the element (out of range, not finite).
    case invalidValue(String, minimum: Double? = nil, maximum: Double? = nil)
    /// An argument the caller gave cannot be used (unknown role or state name, a NUL in text).
    case invalidArgument(field: String, String)
    /// Password fields' text is never read.
    case passwordNeverRead
    /// The request was cancelled while it waited for an app.
    case cancelled
    /// The app answered with something unexpected.
    case unexpected(String, dbusError: String? = nil)

    public var description: String {
        switch self {
        case .busUnavailable(let detail): "accessibility bus unavailable: \(detail)"
        case .appNotFound(let app, let some): "no app \(Text.quoted(app))" + (some ? " (some apps did not answer)" : "")
        case .appGone(let app): "app \(app) has gone"
        case .ambiguousApp(let name, let candidates): "\(candidates.count) apps are named \(Text.quoted(name))"
        case .elementGone(let detail): detail
        case .changed(let change): change.description
        case .fieldNotFound(let field): "no editable field named or labelled \(Text.quoted(field))"
        case .ambiguousField(let field, let candidates): "\(candidates.count) fields match \(Text.quoted(field))"
        case .notResponding(let app, let name): "app \(app) (\(Text.quoted(name))) did not answer in time"
        case .deadlineReached: "the request deadline was reached"
        case .notSupported(let detail, _): detail
        case .ignored(let detail): detail
        case .invalidValue(let detail, _, _): detail
        case .invalidArgument(let field, let detail): "\(field): \(detail)"
        case .passwordNeverRead: "password fields are never read"
        case .cancelled: "request cancelled"
        case .unexpected(let detail, _): detail
        }
    }
}

extension AccessibilityError {
    /// An answer to `Cache.GetItems` that means "use another way to read the tree": no such
    /// interface, no such object, or something the app should not have said.
    var meansNoCache: Bool {
        switch self {
        case .notSupported, .elementGone, .unexpected: true
        default: false
        }
    }
}

/// What changed between the moment an element was seen or decided on and the moment it was
/// to be acted on.
public struct ChangeDetail: Sendable, Hashable, CustomStringConvertible {
    /// `role`, `name`, `label` or `app`.
    public var what: String
    public var was: String
    public var now: String
    public var ref: String?

    public init(what: String, was: String, now: String, ref: String? = nil) {
        self.what = what
        self.was = was
        self.now = now
        self.ref = ref
    }

    public var description: String {
        "element \(ref ?? "") changed: its \(what) was \(Text.quoted(was)), now \(Text.quoted(now)); nothing was done"
    }
}

/// One of several apps sharing a name.
public struct AppCandidate: Sendable, Hashable {
    public var id: String
    public var name: String
    public var pid: Int32
    /// Verified executable, so candidates can be filtered by what the caller may observe.
    public var exe: String?

    public init(id: String, name: String, pid: Int32, exe: String?) {
        self.id = id
        self.name = name
        self.pid = pid
        self.exe = exe
    }
}

/// One of several fields matching a `field.fill` name or label.
public struct FieldCandidate: Sendable, Hashable {
    public var ref: String
    public var role: String
    public var name: String
    public var label: String?

    public init(ref: String, role: String, name: String, label: String?) {
        self.ref = ref
        self.role = role
        self.name = name
        self.label = label
    }
}

/// Text helpers for messages: app-chosen strings are bounded and escaped before they are shown.
enum Text {
    /// `"…"` with control characters escaped, cut at `limit` characters.
    static func quoted(_ s: String, limit: Int = 80) -> String {
        var out = "\""
        var count = 0
        for scalar in s.unicodeScalars {
            if count >= limit {
                out += "…"
                break
            }
            count += 1
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x202A...0x202E).contains(scalar.value)
                    || (0x2066...0x2069).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
                {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
