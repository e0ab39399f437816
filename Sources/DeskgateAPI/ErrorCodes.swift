public import JSONRPC

/// deskgate's own error codes (docs/protocol.md, "Errors"), beside JSON-RPC's standard ones.
extension ErrorCode {
    /// The broker denied the request; `data.reason` says why.
    public static let denied = ErrorCode(rawValue: -32001)
    /// The app is not known or has gone.
    public static let appNotFound = ErrorCode(rawValue: -32002)
    /// The element is gone, stale, or no longer the element that was seen.
    public static let elementNotFound = ErrorCode(rawValue: -32003)
    /// The app did not answer within the deadline.
    public static let appNotResponding = ErrorCode(rawValue: -32004)
    /// The element does not support the operation (no such interface or action).
    public static let notSupported = ErrorCode(rawValue: -32005)
    /// The value is out of range or otherwise unacceptable for the element.
    public static let invalidValue = ErrorCode(rawValue: -32006)
    /// The audit log cannot be written; gated requests are refused until it can.
    public static let auditUnavailable = ErrorCode(rawValue: -32007)
    /// The accessibility bus is not reachable.
    public static let busUnavailable = ErrorCode(rawValue: -32008)
    /// A name matched more than one app or element.
    public static let ambiguous = ErrorCode(rawValue: -32009)
    /// `field.fill_secret`: no Secret Service runs on the session bus (deskgate starts none), it
    /// failed, or the item is in a locked keyring (deskgate never unlocks one); `data.reason`:
    /// `no_service`, `locked` or `failed`. Nothing was filled.
    public static let secretUnavailable = ErrorCode(rawValue: -32010)
    /// `field.fill_secret`: no keyring item matches. Nothing was filled.
    public static let secretNotFound = ErrorCode(rawValue: -32011)
    /// A bound on what clients may hold was reached (connections per process or in all, the
    /// budget of unfinished lines, or a reserve connection asking for more than it may);
    /// `data.reason` says which. The connection is closed after this line, except for a reserve
    /// connection's refused call.
    public static let limitReached = ErrorCode(rawValue: -32012)
}
