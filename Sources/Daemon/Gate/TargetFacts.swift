import ATSPI
import Broker
import JSONRPC

/// How a resolved target reads to the broker and in the audit log: the same facts for both.
extension ResolvedTarget {
    /// What the broker matches rules and grants on: the app's name, verified executable and
    /// pid, and the element's role and display name (its label when it has one: what the person
    /// sees in a prompt).
    var brokerTarget: TargetInfo {
        TargetInfo(appName: app.name, appExe: app.exe, appPid: app.pid, role: element?.role, name: element?.displayName,
                   ref: element?.ref, origin: element?.origin, secretItem: secretItem?.label)
    }

    /// `{app, app_id, app_exe, app_pid, role, name, accessible_name?, shown_name?, ref}` for audit
    /// records: what was decided on, and where it differs, what the element says of itself and
    /// what the client was shown.
    var auditJSON: JSONObject {
        var object: JSONObject = ["app": .string(app.name), "app_id": .string(app.id)]
        if let exe = app.exe { object.append("app_exe", .string(exe)) }
        object.append("app_pid", .int(Int64(app.pid)))
        if let element {
            object.append("role", .string(element.role))
            object.append("name", .string(element.displayName))
            if element.displayName != element.name { object.append("accessible_name", .string(element.name)) }
            if element.renamedSinceShown { object.append("shown_name", .string(element.shownName)) }
            object.append("ref", .string(element.ref))
            if let origin = element.origin { object.append("origin", .string(origin)) }
        }
        if let secretItem { object.append("secret_item", .string(secretItem.label)) }
        return object
    }
}

extension AppTarget {
    /// The app as the broker sees it, without an element.
    var brokerTarget: TargetInfo { TargetInfo(appName: name, appExe: exe, appPid: pid) }
}
