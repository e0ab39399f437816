/// A D-Bus error: the error name as D-Bus spells it, and its message.
///
/// Errors from peers keep the peer's name; errors raised locally use the standard names
/// (`Timeout` for our own per-call deadline, `Disconnected`, `InvalidArgs` for values that cannot
/// be marshalled).
public struct DBusError: Error, Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var message: String

    public init(name: String, message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { "\(name): \(message)" }

    public static let noReplyName = "org.freedesktop.DBus.Error.NoReply"
    public static let timeoutName = "org.freedesktop.DBus.Error.Timeout"
    public static let disconnectedName = "org.freedesktop.DBus.Error.Disconnected"
    public static let serviceUnknownName = "org.freedesktop.DBus.Error.ServiceUnknown"
    public static let nameHasNoOwnerName = "org.freedesktop.DBus.Error.NameHasNoOwner"
    public static let unknownObjectName = "org.freedesktop.DBus.Error.UnknownObject"
    public static let unknownMethodName = "org.freedesktop.DBus.Error.UnknownMethod"
    public static let unknownInterfaceName = "org.freedesktop.DBus.Error.UnknownInterface"
    public static let unknownPropertyName = "org.freedesktop.DBus.Error.UnknownProperty"
    public static let invalidArgsName = "org.freedesktop.DBus.Error.InvalidArgs"
    public static let failedName = "org.freedesktop.DBus.Error.Failed"
    public static let cancelledName = "org.deskgate.DBus.Error.Cancelled"

    /// The call got no answer in time: our own deadline, or libdbus's / the bus's no-reply error
    /// that is not about the peer disconnecting.
    public var isTimeout: Bool {
        if name == DBusError.timeoutName { return true }
        if name == DBusError.noReplyName { return !isPeerGone }
        return false
    }

    /// The peer left: unknown service, no owner, disconnected, or the bus's "recipient
    /// disconnected" no-reply.
    public var isPeerGone: Bool {
        switch name {
        case DBusError.serviceUnknownName, DBusError.nameHasNoOwnerName, DBusError.disconnectedName: true
        case DBusError.noReplyName: message.contains("disconnected")
        default: false
        }
    }

    static func timeout(after ms: Int) -> DBusError {
        DBusError(name: timeoutName, message: "no reply within \(ms) ms")
    }
    static let disconnected = DBusError(name: disconnectedName, message: "connection is closed")
    static let cancelled = DBusError(name: cancelledName, message: "call cancelled")
    static func invalidArgs(_ message: String) -> DBusError { DBusError(name: invalidArgsName, message: message) }
}
