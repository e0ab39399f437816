public import JSONRPC

/// One accessible application as `apps.list` reports it.
public struct AppInfo: Sendable, Hashable {
    /// Stable while the app runs: its unique name on the accessibility bus.
    public var id: String
    /// The app's accessible name (what the app says; advisory).
    public var name: String
    /// From the bus (`GetConnectionUnixProcessID`), never from the app.
    public var pid: Int32
    /// `/proc/PID/exe`, or nil when it cannot be read.
    public var exe: String?
    /// `Application.ToolkitName` ("gtk", "GTK", "Qt", ...).
    public var toolkit: String
    public var windows: [WindowInfo]
    /// False when the app did not answer within the small-call timeout.
    public var responding: Bool

    public struct WindowInfo: Sendable, Hashable {
        public var ref: String
        public var name: String
        public var role: String
        public var active: Bool
    }

    public var json: JSONValue {
        var object: JSONObject = [
            "id": .string(id), "name": .string(name), "pid": .int(Int64(pid)),
            "exe": exe.map(JSONValue.string) ?? .null, "toolkit": .string(toolkit),
        ]
        object.append("windows", .array(windows.map { window in
            ["ref": .string(window.ref), "name": .string(window.name), "role": .string(window.role),
             "active": .bool(window.active)]
        }))
        if !responding { object.append("responding", false) }
        return .object(object)
    }
}

/// Who an app is, as the broker needs it before deciding: from the bus and /proc, not the app.
public struct AppIdentity: Sendable, Hashable {
    /// The app's unique name on the accessibility bus.
    public var id: String
    /// The app's accessible name (what the app says; advisory).
    public var name: String
    public var pid: Int32
    /// `/proc/PID/exe`, or nil when it cannot be read.
    public var exe: String?
}

/// What the broker needs to know about an element before deciding: cheap, from the ref table.
public struct ElementTarget: Sendable, Hashable {
    public var appID: String
    public var appName: String
    public var exe: String?
    public var pid: Int32
    public var role: String
    public var name: String
    /// Name of the element's labelled-by label, when it has one and it is known.
    public var label: String?

    public var json: JSONValue {
        [
            "app": .string(appID), "app_name": .string(appName), "exe": exe.map(JSONValue.string) ?? .null,
            "pid": .int(Int64(pid)), "role": .string(role), "name": .string(name),
            "label": label.map(JSONValue.string) ?? .null,
        ]
    }
}

/// Identifies an event subscription.
public struct SubscriptionID: Hashable, Sendable {
    let value: UInt64
}
