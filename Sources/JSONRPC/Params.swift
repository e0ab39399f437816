/// Params that passed validation against a method's declared fields, with typed accessors.
///
/// Validation happens once, from the schema, before any handler code runs: unknown params,
/// missing required params and wrong types are all -32602 naming the field. Accessors then only
/// convert; asking for a field that was never declared is a programming error reported as
/// -32603, so a handler cannot read a param its schema does not publish.
public struct ParamsObject: Sendable {
    public let object: JSONObject
    public let fields: [Schema.Field]

    /// Validates raw `params` (absent, or an object) against `fields`.
    public init(validating raw: JSONValue?, fields: [Schema.Field]) throws(RPCError) {
        switch raw {
        case nil, .null?:
            object = JSONObject()
        case .object(let o)?:
            object = o
        case .array(let a)? where a.isEmpty:
            object = JSONObject()
        case let other?:
            throw RPCError(.invalidParams, "invalid params: params must be an object of named params, not \(other.typeName)",
                           data: ["field": "params"])
        }
        self.fields = fields
        try Schema.validateMembers(object, fields: fields, additional: false, prefix: "")
    }

    /// Params built in code (tests, internal calls); still validated.
    public init(_ object: JSONObject, fields: [Schema.Field]) throws(RPCError) {
        try self.init(validating: .object(object), fields: fields)
    }

    private func declared(_ name: String) throws(RPCError) -> JSONValue? {
        guard fields.contains(where: { $0.name == name }) else {
            throw .internalError("handler read undeclared param \(name)")
        }
        return object[name]
    }

    public func value(_ name: String) throws(RPCError) -> JSONValue? { try declared(name) }

    public func string(_ name: String) throws(RPCError) -> String {
        guard let s = try declared(name)?.stringValue else { throw .invalidParams(field: name, "missing required parameter") }
        return s
    }
    public func optionalString(_ name: String) throws(RPCError) -> String? { try declared(name)?.stringValue }

    public func int(_ name: String, default defaultValue: Int? = nil) throws(RPCError) -> Int {
        if let i = try declared(name)?.intValue { return Int(i) }
        guard let defaultValue else { throw .invalidParams(field: name, "missing required parameter") }
        return defaultValue
    }
    public func optionalInt(_ name: String) throws(RPCError) -> Int? { try declared(name)?.intValue.map { Int($0) } }

    public func double(_ name: String) throws(RPCError) -> Double {
        guard let d = try declared(name)?.doubleValue else { throw .invalidParams(field: name, "missing required parameter") }
        return d
    }

    public func bool(_ name: String, default defaultValue: Bool) throws(RPCError) -> Bool {
        try declared(name)?.boolValue ?? defaultValue
    }

    public func stringArray(_ name: String) throws(RPCError) -> [String]? {
        guard let array = try declared(name)?.arrayValue else { return nil }
        return array.compactMap(\.stringValue)
    }
}
