import CDBus

/// D-Bus type codes. libdbus defines them as macros of character literals, which Swift does not
/// import, so they are spelled here from their type characters.
enum DBusType {
    static let invalid: Int32 = 0
    static let byte = code("y")
    static let boolean = code("b")
    static let int16 = code("n")
    static let uint16 = code("q")
    static let int32 = code("i")
    static let uint32 = code("u")
    static let int64 = code("x")
    static let uint64 = code("t")
    static let double = code("d")
    static let string = code("s")
    static let objectPath = code("o")
    static let signature = code("g")
    static let unixFD = code("h")
    static let array = code("a")
    static let variant = code("v")
    static let structure = code("r")
    static let dictEntry = code("e")

    private static func code(_ c: Unicode.Scalar) -> Int32 { Int32(c.value) }
}

/// Message types (DBUS_MESSAGE_TYPE_*).
enum DBusMessageType {
    static let methodCall: Int32 = 1
    static let methodReturn: Int32 = 2
    static let error: Int32 = 3
    static let signal: Int32 = 4
}

/// Marshals ``DBusValue``s into messages and back, with libdbus's message iterators.
///
/// libdbus aborts the process on arguments it considers invalid (it treats them as programming
/// errors), so everything that comes from outside is validated here first and turned into an
/// `InvalidArgs` error.
enum DBusCodec {
    // MARK: Validation

    static func validate(_ value: DBusValue) throws(DBusError) {
        switch value {
        case .string(let s):
            if s.utf8.contains(0) { throw .invalidArgs("string contains a NUL character") }
        case .objectPath(let p):
            if !isValidPath(p) { throw .invalidArgs("invalid object path") }
        case .signature(let s):
            if !isValidSignature(s, single: false) { throw .invalidArgs("invalid signature") }
        case .array(let element, let items):
            guard isValidSignature(element, single: true) else { throw .invalidArgs("invalid array element signature") }
            for item in items {
                try validate(item)
                if item.signature != element { throw .invalidArgs("array element does not match signature \(element)") }
            }
        case .dictionary(let key, let valueSig, let entries):
            guard key.count == 1, isBasicTypeSignature(key), isValidSignature(valueSig, single: true) else {
                throw .invalidArgs("invalid dictionary signature")
            }
            for entry in entries {
                try validate(entry.key)
                try validate(entry.value)
                if entry.key.signature != key || entry.value.signature != valueSig {
                    throw .invalidArgs("dictionary entry does not match signature")
                }
            }
        case .structure(let fields):
            if fields.isEmpty { throw .invalidArgs("empty struct") }
            for field in fields { try validate(field) }
        case .variant(let inner):
            try validate(inner)
        default:
            break
        }
    }

    static func isValidPath(_ path: String) -> Bool {
        guard !path.utf8.contains(0) else { return false }
        return path.withCString { dbus_validate_path($0, nil) } != 0
    }

    static func isValidSignature(_ signature: String, single: Bool) -> Bool {
        guard !signature.utf8.contains(0) else { return false }
        return signature.withCString {
            single ? dbus_signature_validate_single($0, nil) != 0 : dbus_signature_validate($0, nil) != 0
        }
    }

    private static func isBasicTypeSignature(_ s: String) -> Bool {
        guard let c = s.unicodeScalars.first else { return false }
        return dbus_type_is_basic(Int32(c.value)) != 0
    }

    static func isValidBusName(_ name: String) -> Bool {
        !name.utf8.contains(0) && name.withCString { dbus_validate_bus_name($0, nil) } != 0
    }

    static func isValidInterface(_ name: String) -> Bool {
        !name.utf8.contains(0) && name.withCString { dbus_validate_interface($0, nil) } != 0
    }

    static func isValidMember(_ name: String) -> Bool {
        !name.utf8.contains(0) && name.withCString { dbus_validate_member($0, nil) } != 0
    }

    // MARK: Writing

    /// Appends the values to a message. Values must have been validated.
    static func append(_ values: [DBusValue], to message: OpaquePointer) -> Bool {
        var iter = DBusMessageIter()
        dbus_message_iter_init_append(message, &iter)
        for value in values where !append(value, to: &iter) { return false }
        return true
    }

    private static func appendBasic<T: BitwiseCopyable>(_ type: Int32, _ value: T, _ iter: inout DBusMessageIter) -> Bool {
        var v = value
        return dbus_message_iter_append_basic(&iter, type, &v) != 0
    }

    private static func appendString(_ type: Int32, _ s: String, _ iter: inout DBusMessageIter) -> Bool {
        s.withCString { cstr in
            var ptr: UnsafePointer<CChar>? = cstr
            return dbus_message_iter_append_basic(&iter, type, &ptr) != 0
        }
    }

    static func append(_ value: DBusValue, to iter: inout DBusMessageIter) -> Bool {
        switch value {
        case .byte(let v): return appendBasic(DBusType.byte, v, &iter)
        case .bool(let v): return appendBasic(DBusType.boolean, dbus_bool_t(v ? 1 : 0), &iter)
        case .int16(let v): return appendBasic(DBusType.int16, v, &iter)
        case .uint16(let v): return appendBasic(DBusType.uint16, v, &iter)
        case .int32(let v): return appendBasic(DBusType.int32, v, &iter)
        case .uint32(let v): return appendBasic(DBusType.uint32, v, &iter)
        case .int64(let v): return appendBasic(DBusType.int64, v, &iter)
        case .uint64(let v): return appendBasic(DBusType.uint64, v, &iter)
        case .double(let v): return appendBasic(DBusType.double, v, &iter)
        case .string(let s): return appendString(DBusType.string, s, &iter)
        case .objectPath(let s): return appendString(DBusType.objectPath, s, &iter)
        case .signature(let s): return appendString(DBusType.signature, s, &iter)
        case .array(let element, let items):
            return appendContainer(DBusType.array, element, &iter) { sub in
                for item in items where !append(item, to: &sub) { return false }
                return true
            }
        case .dictionary(let key, let valueSig, let entries):
            return appendContainer(DBusType.array, "{" + key + valueSig + "}", &iter) { sub in
                for entry in entries {
                    let ok = appendContainer(DBusType.dictEntry, nil, &sub) { pair in
                        append(entry.key, to: &pair) && append(entry.value, to: &pair)
                    }
                    if !ok { return false }
                }
                return true
            }
        case .structure(let fields):
            return appendContainer(DBusType.structure, nil, &iter) { sub in
                for field in fields where !append(field, to: &sub) { return false }
                return true
            }
        case .variant(let inner):
            return appendContainer(DBusType.variant, inner.signature, &iter) { sub in append(inner, to: &sub) }
        }
    }

    private static func appendContainer(
        _ type: Int32, _ signature: String?, _ iter: inout DBusMessageIter,
        _ body: (inout DBusMessageIter) -> Bool
    ) -> Bool {
        var sub = DBusMessageIter()
        let opened: Bool
        if let signature {
            opened = signature.withCString { dbus_message_iter_open_container(&iter, type, $0, &sub) } != 0
        } else {
            opened = dbus_message_iter_open_container(&iter, type, nil, &sub) != 0
        }
        guard opened else { return false }
        guard body(&sub) else {
            dbus_message_iter_abandon_container(&iter, &sub)
            return false
        }
        return dbus_message_iter_close_container(&iter, &sub) != 0
    }

    // MARK: Reading

    /// All arguments of a message.
    static func read(_ message: OpaquePointer) -> [DBusValue] {
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(message, &iter) != 0 else { return [] }
        var values: [DBusValue] = []
        repeat {
            guard let value = read(&iter) else { break }
            values.append(value)
        } while dbus_message_iter_next(&iter) != 0
        return values
    }

    private static func readBasic<T: BitwiseCopyable>(_ iter: inout DBusMessageIter, _ initial: T) -> T {
        var v = initial
        dbus_message_iter_get_basic(&iter, &v)
        return v
    }

    private static func readString(_ iter: inout DBusMessageIter) -> String {
        var ptr: UnsafePointer<CChar>? = nil
        dbus_message_iter_get_basic(&iter, &ptr)
        guard let ptr else { return "" }
        return String(cString: ptr)
    }

    /// The signature of the value under the iterator (libdbus allocates it).
    private static func currentSignature(_ iter: inout DBusMessageIter) -> String {
        guard let raw = dbus_message_iter_get_signature(&iter) else { return "" }
        defer { dbus_free(raw) }
        return String(cString: raw)
    }

    static func read(_ iter: inout DBusMessageIter) -> DBusValue? {
        let type = dbus_message_iter_get_arg_type(&iter)
        switch type {
        case DBusType.invalid: return nil
        case DBusType.byte: return .byte(readBasic(&iter, UInt8(0)))
        case DBusType.boolean: return .bool(readBasic(&iter, dbus_bool_t(0)) != 0)
        case DBusType.int16: return .int16(readBasic(&iter, Int16(0)))
        case DBusType.uint16: return .uint16(readBasic(&iter, UInt16(0)))
        case DBusType.int32: return .int32(readBasic(&iter, Int32(0)))
        case DBusType.uint32: return .uint32(readBasic(&iter, UInt32(0)))
        case DBusType.int64: return .int64(readBasic(&iter, Int64(0)))
        case DBusType.uint64: return .uint64(readBasic(&iter, UInt64(0)))
        case DBusType.double: return .double(readBasic(&iter, Double(0)))
        case DBusType.unixFD: return .uint32(0)  // never used by AT-SPI; fds are not passed through
        case DBusType.string: return .string(readString(&iter))
        case DBusType.objectPath: return .objectPath(readString(&iter))
        case DBusType.signature: return .signature(readString(&iter))
        case DBusType.variant:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            guard let inner = read(&sub) else { return nil }
            return .variant(inner)
        case DBusType.structure:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            var fields: [DBusValue] = []
            repeat {
                guard let field = read(&sub) else { break }
                fields.append(field)
            } while dbus_message_iter_next(&sub) != 0
            return .structure(fields)
        case DBusType.array:
            return readArray(&iter)
        default:
            return nil
        }
    }

    private static func readArray(_ iter: inout DBusMessageIter) -> DBusValue {
        let arraySignature = currentSignature(&iter)
        let elementSignature = String(arraySignature.dropFirst())
        let elementType = dbus_message_iter_get_element_type(&iter)
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(&iter, &sub)
        if elementType == DBusType.dictEntry {
            // "{KV}": key is one basic type character, value the rest.
            let inner = elementSignature.dropFirst().dropLast()
            let keySig = String(inner.prefix(1))
            let valueSig = String(inner.dropFirst())
            var entries: [DBusDictEntry] = []
            while dbus_message_iter_get_arg_type(&sub) == DBusType.dictEntry {
                var pair = DBusMessageIter()
                dbus_message_iter_recurse(&sub, &pair)
                let key = read(&pair)
                dbus_message_iter_next(&pair)
                let value = read(&pair)
                if let key, let value { entries.append(DBusDictEntry(key: key, value: value)) }
                dbus_message_iter_next(&sub)
            }
            return .dictionary(keySignature: keySig, valueSignature: valueSig, entries)
        }
        // Fixed-size elements in one copy (state sets `au` and the like).
        if elementType == DBusType.uint32 || elementType == DBusType.int32 {
            var raw: UnsafeMutableRawPointer? = nil
            var count: Int32 = 0
            dbus_message_iter_get_fixed_array(&sub, &raw, &count)
            guard let raw, count > 0 else { return .array(elementSignature: elementSignature, []) }
            if elementType == DBusType.uint32 {
                let buffer = UnsafeBufferPointer(start: raw.assumingMemoryBound(to: UInt32.self), count: Int(count))
                return .array(elementSignature: elementSignature, buffer.map { .uint32($0) })
            }
            let buffer = UnsafeBufferPointer(start: raw.assumingMemoryBound(to: Int32.self), count: Int(count))
            return .array(elementSignature: elementSignature, buffer.map { .int32($0) })
        }
        var items: [DBusValue] = []
        while dbus_message_iter_get_arg_type(&sub) != DBusType.invalid {
            guard let item = read(&sub) else { break }
            items.append(item)
            dbus_message_iter_next(&sub)
        }
        return .array(elementSignature: elementSignature, items)
    }
}
