import Foundation
import JSONRPC
import MCP

/// Conversions between the MCP SDK's `Value` and deskgate's `JSONValue`.
enum ValueBridge {
    static func json(_ value: Value) -> JSONValue {
        switch value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(Int64(i))
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        // The SDK decodes strings that look like data URLs into `.data`; give the text back.
        case .data(let mimeType, let data): return .string(data.dataURLEncoded(mimeType: mimeType))
        case .array(let items): return .array(items.map(json))
        case .object(let members):
            // Sorted so that errors about unknown arguments name the same one every time.
            return .object(JSONObject(members.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) }))
        }
    }

    static func object(_ arguments: [String: Value]?) -> JSONObject {
        guard let arguments else { return JSONObject() }
        return json(.object(arguments)).objectValue ?? JSONObject()
    }

    static func value(_ json: JSONValue) -> Value {
        switch json {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(Int(i))
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let items): return .array(items.map(value))
        case .object(let members):
            var out: [String: Value] = [:]
            for (key, member) in members { out[key] = value(member) }
            return .object(out)
        }
    }
}
