/// A D-Bus value with enough type information to be marshalled back exactly.
///
/// Containers carry their element signatures so that empty arrays and dictionaries keep their
/// type (`as` and `a{ss}` are different on the wire even when empty).
public indirect enum DBusValue: Sendable, Hashable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// An array; `elementSignature` is the signature of one element (e.g. `"(so)"` for `a(so)`).
    case array(elementSignature: String, [DBusValue])
    /// A dictionary `a{KV}`, entries in wire order.
    case dictionary(keySignature: String, valueSignature: String, [DBusDictEntry])
    case structure([DBusValue])
    case variant(DBusValue)

    /// The value's D-Bus type signature.
    public var signature: String {
        switch self {
        case .byte: "y"
        case .bool: "b"
        case .int16: "n"
        case .uint16: "q"
        case .int32: "i"
        case .uint32: "u"
        case .int64: "x"
        case .uint64: "t"
        case .double: "d"
        case .string: "s"
        case .objectPath: "o"
        case .signature: "g"
        case .array(let element, _): "a" + element
        case .dictionary(let key, let value, _): "a{" + key + value + "}"
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .variant: "v"
        }
    }
}

/// One entry of a D-Bus dictionary.
public struct DBusDictEntry: Sendable, Hashable {
    public var key: DBusValue
    public var value: DBusValue
    public init(key: DBusValue, value: DBusValue) {
        self.key = key
        self.value = value
    }
}

extension DBusValue {
    /// An array of strings (`as`).
    public static func strings(_ values: [String]) -> DBusValue {
        .array(elementSignature: "s", values.map { .string($0) })
    }

    /// A string-to-string dictionary (`a{ss}`), keys in the given order.
    public static func stringDictionary(_ pairs: [(String, String)]) -> DBusValue {
        .dictionary(keySignature: "s", valueSignature: "s",
                    pairs.map { DBusDictEntry(key: .string($0.0), value: .string($0.1)) })
    }

    /// The value inside any number of variant wrappers.
    public var unwrapped: DBusValue {
        if case .variant(let inner) = self { return inner.unwrapped }
        return self
    }

    /// String, object path or signature contents.
    public var stringValue: String? {
        switch unwrapped {
        case .string(let s), .objectPath(let s), .signature(let s): s
        default: nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = unwrapped { return b }
        return nil
    }

    /// Any integer type widened to Int64 (uint64 only when it fits).
    public var integerValue: Int64? {
        switch unwrapped {
        case .byte(let v): Int64(v)
        case .int16(let v): Int64(v)
        case .uint16(let v): Int64(v)
        case .int32(let v): Int64(v)
        case .uint32(let v): Int64(v)
        case .int64(let v): v
        case .uint64(let v): v <= UInt64(Int64.max) ? Int64(v) : nil
        default: nil
        }
    }

    /// Any numeric value as a Double.
    public var doubleValue: Double? {
        if case .double(let d) = unwrapped { return d }
        return integerValue.map(Double.init)
    }

    /// Elements of an array (or the entries' values of a dictionary are not included).
    public var arrayValue: [DBusValue]? {
        if case .array(_, let items) = unwrapped { return items }
        return nil
    }

    public var structFields: [DBusValue]? {
        if case .structure(let fields) = unwrapped { return fields }
        return nil
    }

    public var dictionaryEntries: [DBusDictEntry]? {
        if case .dictionary(_, _, let entries) = unwrapped { return entries }
        return nil
    }

    /// A `(so)` object reference as (bus name, object path).
    public var objectReference: (name: String, path: String)? {
        guard let fields = structFields, fields.count == 2,
              let name = fields[0].stringValue, case .objectPath(let path) = fields[1] else { return nil }
        return (name, path)
    }
}
