public import JSONRPC

/// Builds the OpenRPC 1.2 document served by `rpc.discover`.
public enum OpenRPC {
    public static func document(methods: [MethodDescriptor], version: String) -> JSONValue {
        var list: [JSONValue] = []
        for method in methods {
            var params: [JSONValue] = []
            for field in method.fields {
                var p: JSONObject = ["name": .string(field.name), "schema": field.schema.json, "required": .bool(field.required)]
                if !field.summary.isEmpty { p.append("description", .string(field.summary)) }
                params.append(.object(p))
            }
            var m: JSONObject = [
                "name": .string(method.name),
                "summary": .string(method.summary),
                "paramStructure": "by-name",
                "params": .array(params),
                "result": ["name": "result", "schema": method.result.json],
            ]
            if !method.errors.isEmpty {
                m.append("errors", .array(method.errors.map { ["code": .int(Int64($0.rawValue)), "message": .string(errorName($0))] }))
            }
            m.append("x-deskgate-class", method.riskClass.map { .string($0.rawValue) } ?? .null)
            if method.opensWorld { m.append("x-deskgate-open-world", true) }
            list.append(.object(m))
        }
        return [
            "openrpc": "1.2.6",
            "info": ["title": "deskgate", "version": .string(version),
                     "description": "Gated, audited access to Linux desktop apps through AT-SPI."],
            "methods": .array(list),
        ]
    }

    static func errorName(_ code: ErrorCode) -> String {
        switch code {
        case .denied: "denied by the permission broker"
        case .appNotFound: "app not found or gone"
        case .elementNotFound: "element not found, stale, or changed"
        case .appNotResponding: "app not responding"
        case .notSupported: "not supported by the element"
        case .invalidValue: "value not acceptable"
        case .auditUnavailable: "audit log unavailable"
        case .busUnavailable: "accessibility bus unavailable"
        case .ambiguous: "ambiguous name"
        default: "error \(code.rawValue)"
        }
    }
}
