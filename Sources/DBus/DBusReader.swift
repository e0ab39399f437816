import CDBus

/// A cursor over a message's arguments, for decoding large replies straight into the caller's
/// own types on the connection's thread (no intermediate ``DBusValue`` tree).
///
/// Only valid inside the decode closure of ``DBusConnection/call(destination:path:interface:member:args:timeout:decode:)``.
public struct DBusReader {
    var iter: DBusMessageIter
    /// The whole message, for a reader at its start (``withWireBody(_:)``); nil inside containers.
    let message: OpaquePointer?

    init(iter: DBusMessageIter, message: OpaquePointer? = nil) {
        self.iter = iter
        self.message = message
    }

    /// The type character of the current argument, or nil at the end.
    public var type: Character? {
        mutating get {
            let code = dbus_message_iter_get_arg_type(&iter)
            guard code != DBusType.invalid, let scalar = Unicode.Scalar(UInt32(code)) else { return nil }
            return Character(scalar)
        }
    }

    /// Moves to the next argument; false at the end.
    @discardableResult
    public mutating func advance() -> Bool { dbus_message_iter_next(&iter) != 0 }

    /// A string, object path or signature; nil for other types.
    public mutating func string() -> String? {
        let code = dbus_message_iter_get_arg_type(&iter)
        guard code == DBusType.string || code == DBusType.objectPath || code == DBusType.signature else { return nil }
        var ptr: UnsafePointer<CChar>? = nil
        dbus_message_iter_get_basic(&iter, &ptr)
        return ptr.map { String(cString: $0) }
    }

    /// Any integer or boolean as Int64; nil for other types.
    public mutating func integer() -> Int64? {
        switch dbus_message_iter_get_arg_type(&iter) {
        case DBusType.int32:
            var v: Int32 = 0
            dbus_message_iter_get_basic(&iter, &v)
            return Int64(v)
        case DBusType.uint32, DBusType.boolean:
            var v: UInt32 = 0
            dbus_message_iter_get_basic(&iter, &v)
            return Int64(v)
        case DBusType.int64, DBusType.uint64:
            var v: Int64 = 0
            dbus_message_iter_get_basic(&iter, &v)
            return v
        case DBusType.int16:
            var v: Int16 = 0
            dbus_message_iter_get_basic(&iter, &v)
            return Int64(v)
        case DBusType.uint16:
            var v: UInt16 = 0
            dbus_message_iter_get_basic(&iter, &v)
            return Int64(v)
        case DBusType.byte:
            var v: UInt8 = 0
            dbus_message_iter_get_basic(&iter, &v)
            return Int64(v)
        default:
            return nil
        }
    }

    /// A reader over the contents of the current array, struct, variant or dict entry.
    public mutating func enter() -> DBusReader? {
        let code = dbus_message_iter_get_arg_type(&iter)
        guard code == DBusType.array || code == DBusType.structure || code == DBusType.variant
            || code == DBusType.dictEntry else { return nil }
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(&iter, &sub)
        return DBusReader(iter: sub)
    }

    /// The elements of an `au` or `ai` array (one copy).
    public mutating func words() -> [UInt32] {
        fixedArray(of: UInt32.self, elements: [DBusType.uint32, DBusType.int32]) ?? []
    }

    /// The bytes of an `ay` array (one copy, no ``DBusValue`` per byte); nil for another type.
    public mutating func bytes() -> [UInt8]? {
        fixedArray(of: UInt8.self, elements: [DBusType.byte])
    }

    /// The current argument, an array of a fixed-size type whose element code is one of
    /// `elements`, copied out in one go; nil for anything else.
    private mutating func fixedArray<T: BitwiseCopyable>(of type: T.Type, elements: [Int32]) -> [T]? {
        guard dbus_message_iter_get_arg_type(&iter) == DBusType.array,
              elements.contains(dbus_message_iter_get_element_type(&iter)) else { return nil }
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(&iter, &sub)
        var raw: UnsafeMutableRawPointer? = nil
        var count: Int32 = 0
        dbus_message_iter_get_fixed_array(&sub, &raw, &count)
        guard let raw, count > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: raw.assumingMemoryBound(to: T.self), count: Int(count)))
    }

    /// The current argument as a ``DBusValue``.
    public mutating func value() -> DBusValue? { DBusCodec.read(&iter) }
}
