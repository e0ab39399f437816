import DeskgateAPI
import JSONRPC
import SecretService

/// The one place keyring errors become wire errors (codes in docs/protocol.md). Messages name
/// only what the client asked for and counts, never a secret.
extension SecretError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .unavailable(let why):
            RPCError(.secretUnavailable, String(why.prefix(600)), data: ["reason": "no_service"])
        case .failed(let why):
            RPCError(.secretUnavailable, String(why.prefix(600)), data: ["reason": "failed"])
        case .locked(let why):
            RPCError(.secretUnavailable, String(why.prefix(600)), data: ["reason": "locked"])
        case .notFound(let why):
            RPCError(.secretNotFound, String(why.prefix(600)))
        case .ambiguous(let why, let count):
            RPCError(.ambiguous, String(why.prefix(600)) + "; name the item by more attributes or by its label",
                     data: ["count": .int(Int64(count))])
        case .changed(let why):
            RPCError(.elementNotFound, why + ". Ask again.", data: ["reason": "changed", "what": "secret_item"])
        case .notText:
            RPCError(.notSupported, "the keyring item's secret is not text, so it cannot be typed into a field")
        }
    }
}
