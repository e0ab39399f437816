public import DeskgateAPI
public import JSONRPC

/// Who is asking, as the daemon verified it from the kernel (plus the advisory parts, marked so).
public struct ClientIdentity: Sendable, Hashable {
    public var uid: UInt32
    public var pid: Int32
    /// Verified executable path (`/proc/PID/exe`). Empty means unidentified (the daemon could
    /// not read it): every gated request of such a client is denied (`unidentified`), it may not
    /// register as prompt helper, and nothing is remembered for it.
    public var exe: String
    /// Script path for interpreters, from the command line. Advisory: the process chose it.
    public var script: String?
    /// systemd unit. Advisory for user units.
    public var unit: String?
    /// The client's own label from `session.hello`. Advisory, never matched by policy.
    public var label: String?
    /// The daemon's id of the connection; session grants and prompt queues hang off it.
    public var connectionID: UInt64
    /// Cgroup and start time, read at accept while the pidfd pinned the process; nil when they
    /// could not be read. Decides whether this client may have started the helper (and, for the
    /// helper, which apps it may have started); see ``Provenance``.
    public var origin: ProcessOrigin?

    public init(uid: UInt32, pid: Int32, exe: String, script: String? = nil, unit: String? = nil,
                label: String? = nil, connectionID: UInt64, origin: ProcessOrigin? = nil) {
        self.uid = uid
        self.pid = pid
        self.exe = exe
        self.script = script
        self.unit = unit
        self.label = label
        self.connectionID = connectionID
        self.origin = origin
    }

    /// Whether the daemon could read the client's executable.
    public var isIdentified: Bool { !exe.isEmpty }

    /// `{uid, pid, exe, script, unit, label}` as sent to prompt helpers and audit records.
    public var json: JSONValue {
        ["uid": .int(Int64(uid)), "pid": .int(Int64(pid)), "exe": .string(exe), "script": JSONValue(script),
         "unit": JSONValue(unit), "label": JSONValue(label)]
    }
}

/// What a request touches. App name comes from the app itself; exe and pid from the
/// accessibility bus credentials, which the app cannot fake.
public struct TargetInfo: Sendable, Hashable {
    public var appName: String?
    public var appExe: String?
    public var appPid: Int32?
    /// AT-SPI role name of the element, e.g. "push button", "password text".
    public var role: String?
    /// Element name or field label.
    public var name: String?
    /// The daemon's element ref; informational (refs are not stable, never matched).
    public var ref: String?
    /// In a browser: the origin (`scheme://host[:port]`) of the web document holding the
    /// element, read live by the daemon; nil where unknown (then no `origin` rule matches).
    public var origin: String?
    /// `field.fill_secret`: the label of the keyring item to fill, as the keyring holds it.
    public var secretItem: String?

    public init(appName: String? = nil, appExe: String? = nil, appPid: Int32? = nil, role: String? = nil,
                name: String? = nil, ref: String? = nil, origin: String? = nil, secretItem: String? = nil) {
        self.origin = origin
        self.secretItem = secretItem
        self.appName = appName
        self.appExe = appExe
        self.appPid = appPid
        self.role = role
        self.name = name
        self.ref = ref
    }

    /// Whether the request names an element (rules with `role` or `name` need one).
    public var hasElement: Bool { role != nil || name != nil }

    public var json: JSONValue {
        var object = JSONObject()
        if let appName { object.append("app", .string(appName)) }
        if let appExe { object.append("app_exe", .string(appExe)) }
        if let appPid { object.append("app_pid", .int(Int64(appPid))) }
        if let role { object.append("role", .string(role)) }
        if let name { object.append("name", .string(name)) }
        if let ref { object.append("ref", .string(ref)) }
        if let origin { object.append("origin", .string(origin)) }
        if let secretItem { object.append("secret_item", .string(secretItem)) }
        return .object(object)
    }
}

/// One request for the broker to decide.
public struct BrokerRequest: Sendable {
    public var client: ClientIdentity
    public var method: String
    public var riskClass: RiskClass
    public var target: TargetInfo?
    /// False when the client sent `"interactive": false`: never prompt, deny `would_prompt`.
    public var interactive: Bool
    /// What the person is shown, e.g. "set text (12 characters)". Never the value being typed.
    public var preview: String?
    /// For `act` and `write`: asked as the decision's last input, after any prompt; false when
    /// the client's process exec'd another program since it connected (the identity decided on
    /// is no longer true). Nil: not checked.
    public var clientUnchanged: (@Sendable () -> Bool)?

    public init(client: ClientIdentity, method: String, riskClass: RiskClass, target: TargetInfo? = nil,
                interactive: Bool = true, preview: String? = nil, clientUnchanged: (@Sendable () -> Bool)? = nil) {
        self.client = client
        self.method = method
        self.riskClass = riskClass
        self.target = target
        self.interactive = interactive
        self.preview = preview
        self.clientUnchanged = clientUnchanged
    }
}

extension RiskClass {
    /// act, write and secret change the desktop: the daemon re-checks the client's exe before
    /// acting, and a locked screen pauses them.
    public var isMutating: Bool { self == .act || self == .write || self == .secret }

    /// What a pause (the stop button) stops: everything that touches apps.
    public var isPausable: Bool { self <= .write || self == .secret }

    /// "write to", "read" etc. for messages.
    var verbPhrase: String {
        switch self {
        case .observe: "observe"
        case .read: "read text in"
        case .act: "act on"
        case .write: "write to"
        case .secret: "fill a keyring secret into"
        case .admin: "use admin methods on"
        case .control: "lift the pause of"
        }
    }
}
