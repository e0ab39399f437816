/// A small JSON Schema subset: enough to describe and validate every deskgate param and result.
/// The same value validates incoming params and is published through `rpc.discover`.
public indirect enum Schema: Sendable, Hashable {
    case string(enumValues: [String]? = nil, maxLength: Int? = nil)
    case integer(minimum: Int64? = nil, maximum: Int64? = nil)
    case number(minimum: Double? = nil, maximum: Double? = nil)
    case boolean
    case array(Schema, maxItems: Int? = nil)
    /// An object with named fields; `additional` false rejects unknown members.
    case object([Field], additional: Bool = false)
    /// A value of either schema (e.g. a number or a string).
    case anyOf([Schema])
    case null
    /// Any JSON value (documented, not validated).
    case any(description: String = "")

    public static let string = Schema.string()
    public static let integer = Schema.integer()
    public static let number = Schema.number()
    public static func stringEnum(_ values: [String]) -> Schema { .string(enumValues: values) }
    public static func arrayOf(_ items: Schema) -> Schema { .array(items) }

    /// A named member of an object schema (a param, or a result field).
    public struct Field: Sendable, Hashable {
        public var name: String
        public var schema: Schema
        public var required: Bool
        public var summary: String

        public init(_ name: String, _ schema: Schema, required: Bool = false, _ summary: String = "") {
            self.name = name
            self.schema = schema
            self.required = required
            self.summary = summary
        }
    }

    /// The JSON Schema document for this schema.
    public var json: JSONValue {
        switch self {
        case .string(let values, let maxLength):
            var o: JSONObject = ["type": "string"]
            if let values { o.append("enum", JSONValue(values)) }
            if let maxLength { o.append("maxLength", JSONValue(maxLength)) }
            return .object(o)
        case .integer(let minimum, let maximum):
            var o: JSONObject = ["type": "integer"]
            if let minimum { o.append("minimum", .int(minimum)) }
            if let maximum { o.append("maximum", .int(maximum)) }
            return .object(o)
        case .number(let minimum, let maximum):
            var o: JSONObject = ["type": "number"]
            if let minimum { o.append("minimum", .double(minimum)) }
            if let maximum { o.append("maximum", .double(maximum)) }
            return .object(o)
        case .boolean: return ["type": "boolean"]
        case .null: return ["type": "null"]
        case .array(let items, let maxItems):
            var o: JSONObject = ["type": "array", "items": items.json]
            if let maxItems { o.append("maxItems", JSONValue(maxItems)) }
            return .object(o)
        case .object(let fields, let additional):
            var properties = JSONObject()
            for field in fields {
                var schema = field.schema.json
                if !field.summary.isEmpty, case .object(var o) = schema {
                    o["description"] = .string(field.summary)
                    schema = .object(o)
                }
                properties.append(field.name, schema)
            }
            var o: JSONObject = ["type": "object", "properties": .object(properties)]
            let required = fields.filter(\.required).map(\.name)
            if !required.isEmpty { o.append("required", JSONValue(required)) }
            o.append("additionalProperties", .bool(additional))
            return .object(o)
        case .anyOf(let schemas):
            return ["anyOf": .array(schemas.map(\.json))]
        case .any(let description):
            return description.isEmpty ? [:] : ["description": .string(description)]
        }
    }

    /// Checks `value` against the schema. `path` names the field in errors (`events[2]`).
    public func validate(_ value: JSONValue, path: String) throws(RPCError) {
        switch self {
        case .string(let values, let maxLength):
            guard case .string(let s) = value else { throw Self.typeError(path, "a string", value) }
            if let values, !values.contains(s) {
                throw .invalidParams(field: path, "must be one of \(values.joined(separator: ", ")), not \"\(JSONWriter.escapedForMessage(s))\"")
            }
            if let maxLength, s.count > maxLength {
                throw .invalidParams(field: path, "longer than \(maxLength) characters")
            }
        case .integer(let minimum, let maximum):
            guard let i = value.intValue else { throw Self.typeError(path, "an integer", value) }
            if let minimum, i < minimum { throw .invalidParams(field: path, "must be at least \(minimum)") }
            if let maximum, i > maximum { throw .invalidParams(field: path, "must be at most \(maximum)") }
        case .number(let minimum, let maximum):
            guard let d = value.doubleValue else { throw Self.typeError(path, "a number", value) }
            if let minimum, d < minimum { throw .invalidParams(field: path, "must be at least \(minimum)") }
            if let maximum, d > maximum { throw .invalidParams(field: path, "must be at most \(maximum)") }
        case .boolean:
            guard case .bool = value else { throw Self.typeError(path, "a boolean", value) }
        case .null:
            guard case .null = value else { throw Self.typeError(path, "null", value) }
        case .array(let items, let maxItems):
            guard case .array(let elements) = value else { throw Self.typeError(path, "an array", value) }
            if let maxItems, elements.count > maxItems {
                throw .invalidParams(field: path, "more than \(maxItems) items")
            }
            for (i, element) in elements.enumerated() { try items.validate(element, path: "\(path)[\(i)]") }
        case .object(let fields, let additional):
            guard case .object(let object) = value else { throw Self.typeError(path, "an object", value) }
            try Self.validateMembers(object, fields: fields, additional: additional, prefix: path.isEmpty ? "" : path + ".")
        case .anyOf(let schemas):
            for schema in schemas {
                if (try? schema.validate(value, path: path)) != nil { return }
            }
            throw .invalidParams(field: path, "has an unexpected type \(value.typeName)")
        case .any:
            return
        }
    }

    /// Validates an object's members: unknown members first (agents make typos), then required
    /// members, then each member's type.
    public static func validateMembers(_ object: JSONObject, fields: [Field], additional: Bool, prefix: String) throws(RPCError) {
        if !additional {
            for key in object.keys where !fields.contains(where: { $0.name == key }) {
                throw .invalidParams(field: prefix + key, "unknown parameter")
            }
        }
        for field in fields {
            guard let member = object[field.name] else {
                if field.required { throw .invalidParams(field: prefix + field.name, "missing required parameter") }
                continue
            }
            try field.schema.validate(member, path: prefix + field.name)
        }
    }

    private static func typeError(_ path: String, _ expected: String, _ value: JSONValue) -> RPCError {
        .invalidParams(field: path, "must be \(expected), not \(value.typeName)")
    }
}
