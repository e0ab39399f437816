import DBus

/// What a failed call to an app means, in the accessibility API's terms.
extension AppCalls {
    /// Maps a D-Bus failure; a timeout marks the app hung, an owner that left forgets the app.
    func failure(for error: DBusError, app: AppHandle, interface: String, deadline: Deadline? = nil) async -> AccessibilityError {
        // A call cut short by the request's own deadline says nothing about the app.
        if error.isTimeout, let deadline, deadline.hasPassed { return .deadlineReached }
        if error.isTimeout {
            hangs.markHung(app)
            return .notResponding(app: app.id, name: app.name)
        }
        if error.isPeerGone || error.name == DBusError.cancelledName {
            if error.isPeerGone, await !registry.nameHasOwner(app.id) {
                registry.forget(app)
                return .appGone(app: app.id)
            }
            if error.isPeerGone { return .appGone(app: app.id) }
            return .cancelled
        }
        if Self.isGoneObjectError(error) { return .elementGone("element no longer exists") }
        if error.name == DBusError.unknownMethodName || error.name == DBusError.unknownInterfaceName
            || error.message.contains("No such interface") || error.name == DBusError.unknownPropertyName
        {
            return .notSupported("the element does not support \(interface.isEmpty ? "this" : interface)")
        }
        return .unexpected("app returned \(error.name)", dbusError: error.name)
    }

    /// Toolkits say "this object is gone" in several ways.
    static func isGoneObjectError(_ error: DBusError) -> Bool {
        if error.name == DBusError.unknownObjectName { return true }
        let message = error.message
        return message.contains("does not exist") || message.contains("No such object")
            || message.contains("No such interface \u{201C}org.a11y.atspi.Accessible\u{201D}")
            || message.contains("No such interface 'org.a11y.atspi.Accessible'")
            || message.contains("No such interface \"org.a11y.atspi.Accessible\"")
    }
}
