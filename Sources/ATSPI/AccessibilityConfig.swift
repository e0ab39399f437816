/// Settings of the accessibility service.
public struct AccessibilityConfig: Sendable {
    /// Address of the accessibility bus; nil: `AT_SPI_BUS_ADDRESS`, else `org.a11y.Bus.GetAddress`
    /// on the session bus.
    public var busAddress: String?
    /// Per-call timeout of small reads (name, role, state, children...).
    public var readTimeout: Duration
    /// Per-call timeout of bulk reads (`Cache.GetItems`, `Collection.GetMatches`).
    public var bulkCallTimeout: Duration
    /// Per-call timeout of actions (`DoAction`, `SetTextContents`, `GrabFocus`, value writes).
    public var actionTimeout: Duration
    /// Overall deadline of one request; a walk that reaches it returns what it has, truncated.
    public var requestDeadline: Duration
    /// How long an action's result waits for the element's states (text, value) to show the
    /// change the action makes, woken by the app's events.
    public var settleTimeout: Duration = .seconds(1)
    /// Open peer-to-peer connections to apps that offer them (atk-bridge), after checking that
    /// the peer is the process the bus says owns the app.
    public var usePeerToPeer: Bool
    /// Set `org.a11y.Status.IsEnabled` to true at start (and restore it at shutdown).
    public var enableAccessibility: Bool
    /// How waits between polls sleep (`element.focus`). The daemon passes an event-loop timer:
    /// Swift 6.3's `Task.sleep` arms libdispatch's 1 Hz pool monitor for good.
    public var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }

    public init(
        busAddress: String? = nil,
        readTimeout: Duration = .milliseconds(500),
        bulkCallTimeout: Duration = .seconds(5),
        actionTimeout: Duration = .seconds(2),
        requestDeadline: Duration = .seconds(10),
        usePeerToPeer: Bool = true,
        enableAccessibility: Bool = true
    ) {
        self.busAddress = busAddress
        self.readTimeout = readTimeout
        self.bulkCallTimeout = bulkCallTimeout
        self.actionTimeout = actionTimeout
        self.requestDeadline = requestDeadline
        self.usePeerToPeer = usePeerToPeer
        self.enableAccessibility = enableAccessibility
    }
}
