/// The app a request touches, as resolved for that request: its id, pid, executable and start
/// time come from the bus and `/proc`, never from the app; only its name is the app's own word.
public struct AppTarget: Sendable, Hashable {
    /// Unique name on the accessibility bus: the app's id while it runs.
    public var id: String
    /// The app's accessible name (chosen by the app; advisory).
    public var name: String
    /// From the bus (`GetConnectionUnixProcessID`).
    public var pid: Int32
    /// `/proc/PID/exe`, or nil when it cannot be read.
    public var exe: String?
    /// Start time of the process (`/proc/PID/stat`, clock ticks after boot): with the pid, it
    /// names one process for good.
    public var startTime: UInt64?

    public init(id: String, name: String, pid: Int32, exe: String?, startTime: UInt64?) {
        self.id = id
        self.name = name
        self.pid = pid
        self.exe = exe
        self.startTime = startTime
    }
}

/// The element a request touches, read live from its app for that request.
public struct ElementTarget: Sendable {
    /// The daemon's handle of the element.
    public var ref: String
    /// AT-SPI role name, e.g. "push button", "password text".
    public var role: String
    /// The element's accessible name (chosen by the app).
    public var name: String
    /// The name of the element's `labelled-by` label, for fields, check boxes and the like.
    public var label: String?
    /// Lower-case AT-SPI state names.
    public var states: [String]
    /// The name the ref was issued with: what a snapshot, find or listing showed the client.
    public var shownName: String
    /// In a browser: the origin (`scheme://host[:port]`) of the web document holding the
    /// element, read live from the document's own URL attribute; nil where there is none or it
    /// cannot be read (then no origin rule matches).
    public var origin: String?

    /// Object path in the app, and what was read of it (interfaces, raw states).
    var path: String
    var node: AccessibleNode?

    /// An element described by its facts alone (tests, and providers other than AT-SPI).
    public init(ref: String, role: String, name: String, label: String? = nil, states: [String] = [],
                shownName: String? = nil, origin: String? = nil) {
        self.ref = ref
        self.origin = origin
        self.role = role
        self.name = name
        self.label = label
        self.states = states
        self.shownName = shownName ?? name
        path = ""
        node = nil
    }

    init(ref: String, node: AccessibleNode, label: String?, shownName: String, origin: String? = nil) {
        self.ref = ref
        self.origin = origin
        role = AtspiNames.role(node.role)
        name = node.name
        self.label = label
        states = node.states.names
        self.shownName = shownName
        path = node.path
        self.node = node
    }

    /// What a person calls the element, and what policy rules' `name` and prompts use: its label
    /// when it has a non-empty one, else its accessible name.
    public var displayName: String {
        if let label, !label.isEmpty { return label }
        return name
    }

    /// Password fields: their text is never read, and values typed into them are recorded as
    /// their length only.
    public var isPassword: Bool { role == AtspiNames.role(AtspiNames.passwordRole) }

    /// Whether the element's name is no longer the one its ref was issued with.
    public var renamedSinceShown: Bool { name != shownName }
}

/// Exactly what one request touches, resolved once and live before the broker decides: the
/// broker decides on it, the audit log records it, and the action acts on it after checking
/// that it is still the same (``AccessibilityService/confirm(_:)``).
public struct ResolvedTarget: Sendable {
    public var app: AppTarget
    /// The element, for requests that name one (a ref, a field, a snapshot root).
    public var element: ElementTarget?
    /// `field.fill_secret`: the keyring item to fill, found before the decision.
    public var secretItem: SecretItemTarget?

    public init(app: AppTarget, element: ElementTarget? = nil, secretItem: SecretItemTarget? = nil) {
        self.app = app
        self.element = element
        self.secretItem = secretItem
    }
}

/// A keyring item a request names: its label (what the broker decides on) and its object path.
public struct SecretItemTarget: Sendable, Hashable {
    public var label: String
    public var path: String

    public init(label: String, path: String) {
        self.label = label
        self.path = path
    }
}

/// An element whose content (text or value) a result would carry, as the broker decides on it:
/// its role and what a person calls it (``ElementTarget/displayName``).
public struct ContentSubject: Sendable, Hashable {
    public var role: String
    public var name: String
    /// The origin of the web page holding the element, in a browser (see ``ElementTarget/origin``).
    public var origin: String?

    public init(role: String, name: String, origin: String? = nil) {
        self.role = role
        self.name = name
        self.origin = origin
    }
}

/// Decides, for one result, which of its elements' content may be included: one answer per
/// subject, in order. Content not allowed is never read from the app.
public typealias ContentDecider = @Sendable ([ContentSubject]) -> [Bool]
