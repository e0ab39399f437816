/// A request id: a string, a number, or null (JSON-RPC 2.0 §4).
public enum RequestID: Hashable, Sendable, CustomStringConvertible {
    case int(Int64)
    case double(Double)
    case string(String)
    case null

    public init?(json: JSONValue) {
        switch json {
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .null: self = .null
        default: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .string(let s): .string(s)
        case .null: .null
        }
    }

    public var description: String { JSONWriter.string(json) }
}

public struct Request: Sendable, Hashable {
    public var id: RequestID
    public var method: String
    public var params: JSONValue?
    public init(id: RequestID, method: String, params: JSONValue? = nil) {
        self.id = id
        self.method = method
        self.params = params
    }
}

public struct Notification: Sendable, Hashable {
    public var method: String
    public var params: JSONValue?
    public init(method: String, params: JSONValue? = nil) {
        self.method = method
        self.params = params
    }
}

public struct Response: Sendable, Hashable {
    public var id: RequestID
    public var result: Result<JSONValue, RPCError>
    public init(id: RequestID, result: Result<JSONValue, RPCError>) {
        self.id = id
        self.result = result
    }
    public init(id: RequestID, error: RPCError) { self.init(id: id, result: .failure(error)) }
}

/// One JSON-RPC message in either direction.
public enum Message: Sendable, Hashable {
    case request(Request)
    case notification(Notification)
    case response(Response)

    /// The message as a JSON value, members in the conventional order.
    public var json: JSONValue {
        var object = JSONObject()
        object.append("jsonrpc", "2.0")
        switch self {
        case .request(let request):
            object.append("id", request.id.json)
            object.append("method", .string(request.method))
            if let params = request.params { object.append("params", params) }
        case .notification(let notification):
            object.append("method", .string(notification.method))
            if let params = notification.params { object.append("params", params) }
        case .response(let response):
            // "id" is always present, null when it could not be determined (parse errors).
            object.append("id", response.id.json)
            switch response.result {
            case .success(let value): object.append("result", value)
            case .failure(let error): object.append("error", error.json)
            }
        }
        return .object(object)
    }

    /// The message as one NDJSON line, newline included.
    public var line: [UInt8] {
        var writer = JSONWriter()
        writer.write(json)
        writer.bytes.append(0x0A)
        return writer.bytes
    }

    /// A successful response whose result is already JSON text, as one JSON object (no newline):
    /// the same bytes as writing `.response(Response(id: id, result: .success(value))).json` when
    /// `result` is `value` as ``JSONWriter`` writes it. The result is copied once.
    public static func responseObject(id: RequestID, result: EncodedJSON) -> [UInt8] {
        var writer = JSONWriter(capacity: result.bytes.count + 64)
        writer.raw(#"{"jsonrpc":"2.0","id":"#)
        writer.write(id.json)
        writer.raw(#","result":"#)
        writer.raw(result.bytes)
        writer.raw("}")
        return writer.bytes
    }
}

/// JSON text written ahead of the reply that carries it: a large method result written straight
/// from the handler's own types, without a ``JSONValue`` tree. Only a ``JSONWriter`` makes one,
/// so it holds one complete JSON value.
public struct EncodedJSON: Sendable {
    public let bytes: [UInt8]

    /// The text `writer` has written (one complete value).
    public init(_ writer: consuming JSONWriter) { bytes = writer.bytes }
}

/// What one received line decodes to.
public enum Incoming: Sendable, Hashable {
    /// A single message, or one that failed validation (answer with the error, `id` if known).
    case single(Decoded)
    /// A batch of entries; an empty batch never reaches here (it is an invalid request).
    case batch([Decoded])
}

public enum Decoded: Sendable, Hashable {
    case message(Message)
    /// The entry is not a valid message. `id` is set when the entry carried a usable one,
    /// so the error can be matched; nil means reply with `"id": null`.
    case invalid(id: RequestID?, error: RPCError)
}

/// Decodes NDJSON lines into JSON-RPC messages. Pure: no I/O, no state.
public struct MessageDecoder: Sendable {
    public var maxDepth: Int
    /// Batches larger than this are refused whole (one line may not fan out without bound).
    public var maxBatch: Int

    public init(maxDepth: Int = JSONParser.defaultMaxDepth, maxBatch: Int = 64) {
        self.maxDepth = maxDepth
        self.maxBatch = maxBatch
    }

    public func decode<Bytes: Collection<UInt8>>(line: Bytes) -> Incoming {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, maxDepth: maxDepth)
        } catch .duplicateKey(let key) {
            return .single(.invalid(id: nil, error: .invalidRequest("duplicate object key \"\(JSONWriter.escapedForMessage(key))\"")))
        } catch .tooDeep(let limit) {
            return .single(.invalid(id: nil, error: .invalidRequest("JSON nested deeper than \(limit) levels")))
        } catch {
            return .single(.invalid(id: nil, error: .parseError(error.description)))
        }
        switch value {
        case .array(let entries):
            if entries.isEmpty { return .single(.invalid(id: nil, error: .invalidRequest("empty batch"))) }
            if entries.count > maxBatch {
                return .single(.invalid(id: nil, error: .invalidRequest("batch of \(entries.count) entries exceeds the limit of \(maxBatch)")))
            }
            return .batch(entries.map(decodeEntry))
        case .object:
            return .single(decodeEntry(value))
        default:
            return .single(.invalid(id: nil, error: .invalidRequest("a message must be a JSON object or array, not \(value.typeName)")))
        }
    }

    public func decodeEntry(_ value: JSONValue) -> Decoded {
        guard let object = value.objectValue else {
            return .invalid(id: nil, error: .invalidRequest("a batch entry must be an object, not \(value.typeName)"))
        }
        var id: RequestID? = nil
        var hasID = false
        if let rawID = object["id"] {
            hasID = true
            guard let parsed = RequestID(json: rawID) else {
                return .invalid(id: nil, error: .invalidRequest("\"id\" must be a string, number or null"))
            }
            id = parsed
        }
        guard object["jsonrpc"] == .string("2.0") else {
            return .invalid(id: id, error: .invalidRequest("\"jsonrpc\" must be \"2.0\""))
        }
        if let method = object["method"] {
            guard case .string(let name) = method else {
                return .invalid(id: id, error: .invalidRequest("\"method\" must be a string"))
            }
            for key in object.keys where !["jsonrpc", "id", "method", "params"].contains(key) {
                return .invalid(id: id, error: .invalidRequest("unknown member \"\(JSONWriter.escapedForMessage(key))\""))
            }
            let params = object["params"]
            if let params {
                switch params {
                case .object, .array: break
                default: return .invalid(id: id, error: .invalidRequest("\"params\" must be an object or array"))
                }
            }
            if hasID, let id {
                return .message(.request(Request(id: id, method: name, params: params)))
            }
            return .message(.notification(Notification(method: name, params: params)))
        }
        // A response to a request this side sent.
        let result = object["result"]
        let error = object["error"]
        guard hasID, let id else {
            return .invalid(id: nil, error: .invalidRequest("missing \"method\""))
        }
        for key in object.keys where !["jsonrpc", "id", "result", "error"].contains(key) {
            return .invalid(id: id, error: .invalidRequest("unknown member \"\(JSONWriter.escapedForMessage(key))\""))
        }
        switch (result, error) {
        case (let result?, nil):
            return .message(.response(Response(id: id, result: .success(result))))
        case (nil, let error?):
            guard let rpcError = RPCError(json: error) else {
                return .invalid(id: id, error: .invalidRequest("malformed \"error\" object"))
            }
            return .message(.response(Response(id: id, result: .failure(rpcError))))
        default:
            return .invalid(id: id, error: .invalidRequest("a message needs \"method\", or exactly one of \"result\" and \"error\""))
        }
    }
}
