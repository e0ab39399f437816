import ATSPI
import DeskgateAPI
import JSONRPC

/// The one place accessibility errors become wire errors (codes in docs/protocol.md).
extension AccessibilityError: RPCErrorConvertible {
    public var rpcError: RPCError {
        // App-chosen strings in descriptions are already quoted, escaped and bounded.
        let message = String(description.prefix(600))
        switch self {
        case .busUnavailable:
            return RPCError(.busUnavailable, message)
        case .appNotFound, .appGone(_):
            var data: JSONObject = [:]
            if case .appGone(let app) = self { data.append("app", .string(app)) }
            return RPCError(.appNotFound, message, data: data.isEmpty ? nil : .object(data))
        case .ambiguousApp(_, let candidates):
            return RPCError(.ambiguous, message, data: ["candidates": .array(candidates.map { candidate in
                ["id": .string(candidate.id), "name": .string(candidate.name), "pid": .int(Int64(candidate.pid))]
            })])
        case .elementGone, .fieldNotFound:
            return RPCError(.elementNotFound, message)
        case .changed(let change):
            var data: JSONObject = ["reason": "changed", "what": .string(change.what)]
            if let ref = change.ref { data.append("ref", .string(ref)) }
            return RPCError(.elementNotFound, message + ". Take a new snapshot and decide again.", data: .object(data))
        case .ambiguousField(_, let candidates):
            return RPCError(.ambiguous, message, data: ["candidates": .array(candidates.map(Self.json))])
        case .notResponding(let app, _):
            return RPCError(.appNotResponding, message, data: ["app": .string(app)])
        case .deadlineReached:
            return RPCError(.appNotResponding, message, data: ["deadline_reached": true])
        case .notSupported(_, let actions):
            return RPCError(.notSupported, message, data: actions.map { ["actions": JSONValue($0)] })
        case .ignored:
            return RPCError(.notSupported, message, data: ["reason": "ignored_by_app"])
        case .invalidValue(_, let minimum, let maximum):
            var data: JSONObject = [:]
            if let minimum { data.append("minimum", .double(minimum)) }
            if let maximum { data.append("maximum", .double(maximum)) }
            return RPCError(.invalidValue, message, data: data.isEmpty ? nil : .object(data))
        case .invalidArgument(let field, let detail):
            return .invalidParams(field: field, detail)
        case .passwordNeverRead:
            return RPCError(.denied, message, data: ["reason": "hard_deny", "class": "read"])
        case .cancelled:
            return .cancelled
        case .unexpected(_, let dbusError):
            return RPCError(.internalError, message, data: dbusError.map { ["dbus_error": .string($0)] })
        }
    }

    static func json(_ candidate: FieldCandidate) -> JSONValue {
        ["ref": .string(candidate.ref), "role": .string(candidate.role), "name": .string(candidate.name),
         "label": candidate.label.map(JSONValue.string) ?? .null]
    }
}
