/// A JSON-RPC error code. Stable numbers; the names are for code, the numbers for the wire.
/// This module names the JSON-RPC 2.0 codes; applications add their own (deskgate's are in
/// `DeskgateAPI`).
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    // JSON-RPC 2.0
    public static let parseError = ErrorCode(rawValue: -32700)
    public static let invalidRequest = ErrorCode(rawValue: -32600)
    public static let methodNotFound = ErrorCode(rawValue: -32601)
    public static let invalidParams = ErrorCode(rawValue: -32602)
    public static let internalError = ErrorCode(rawValue: -32603)
    /// The client cancelled the request with `rpc.cancel` (LSP's RequestCancelled number).
    public static let requestCancelled = ErrorCode(rawValue: -32800)

    public var description: String { String(rawValue) }
}

/// An error as sent on the wire: code, message, optional data.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var data: JSONValue?

    public init(_ code: ErrorCode, _ message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(message) (\(code.rawValue))" }

    public var json: JSONValue {
        var object: JSONObject = ["code": .int(Int64(code.rawValue)), "message": .string(message)]
        if let data { object.append("data", data) }
        return .object(object)
    }

    public static func parseError(_ detail: String) -> RPCError {
        RPCError(.parseError, "parse error: \(detail)")
    }
    public static func invalidRequest(_ detail: String) -> RPCError {
        RPCError(.invalidRequest, "invalid request: \(detail)")
    }
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(.methodNotFound, "method not found: \(JSONWriter.escapedForMessage(method))",
                 data: ["method": .string(String(method.prefix(200)))])
    }
    /// Invalid params, with `data.field` naming the offending field.
    public static func invalidParams(field: String, _ detail: String) -> RPCError {
        RPCError(.invalidParams, "invalid params: \(field): \(detail)", data: ["field": .string(field)])
    }
    public static func internalError(_ detail: String) -> RPCError {
        RPCError(.internalError, "internal error: \(detail)")
    }
    public static let cancelled = RPCError(.requestCancelled, "request cancelled")
    public static let messageTooLarge = RPCError(.invalidRequest, "message too large")

    /// Decodes an error object received from a peer.
    public init?(json: JSONValue) {
        guard let object = json.objectValue, let code = object["code"]?.intValue,
              let message = object["message"]?.stringValue else { return nil }
        self.init(ErrorCode(rawValue: Int(code)), message, data: object["data"])
    }
}

/// Domain errors that know their JSON-RPC form.
public protocol RPCErrorConvertible: Error {
    var rpcError: RPCError { get }
}

extension RPCError: RPCErrorConvertible {
    public var rpcError: RPCError { self }
}
