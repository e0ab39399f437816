import Audit
import DeskgateAPI
import JSONRPC

/// Audit errors as wire errors: an unwritable log refuses gated requests (-32007).
extension AuditError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .unavailable(let reason):
            RPCError(.auditUnavailable, "audit log unavailable; refusing gated requests", data: ["reason": .string(reason)])
        case .invalidFilter(let field, let reason): .invalidParams(field: field, reason)
        }
    }
}
