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
}

/// Identifies an event subscription.
public struct SubscriptionID: Hashable, Sendable {
    public let value: UInt64
    public init(value: UInt64) { self.value = value }
}
