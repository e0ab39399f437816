import CDBus

/// A cursor over a message body in the D-Bus wire format, for decoders of large, fixed-signature
/// replies (such as `Cache.GetItems`) that are several times faster than libdbus's iterators.
///
/// libdbus has validated the whole message (lengths, alignment, UTF-8, object paths) before it is
/// handed out, so the reader only has to stay in bounds: every read is checked, and a read past
/// the end or a length that does not fit sets ``failed`` and yields zeros or empty values, never
/// a crash. Alignment is counted from the body start, which the format places on an 8-byte
/// boundary of the message.
///
/// Only valid inside ``DBusReader/withWireBody(_:)``.
public struct DBusWireReader {
    private let bytes: UnsafeRawBufferPointer
    private let swapped: Bool
    /// The body's type signature, e.g. `a((so)(so)(so)iiassusau)`.
    public let signature: String
    /// Byte offset from the start of the body.
    public private(set) var offset = 0
    /// Set once a read ran past the end or met an impossible length; values read after it are
    /// meaningless.
    public private(set) var failed = false

    init(body: UnsafeRawBufferPointer, bigEndian: Bool, signature: String) {
        bytes = body
        swapped = bigEndian != (UInt32(1).bigEndian == 1)
        self.signature = signature
    }

    /// Whether every byte of the body has been read.
    public var isAtEnd: Bool { offset >= bytes.count }

    /// Skips padding up to the next multiple of `alignment` (1, 2, 4 or 8).
    @inline(__always)
    public mutating func align(_ alignment: Int) {
        let aligned = (offset + alignment - 1) & ~(alignment - 1)
        if aligned > bytes.count { fail() } else { offset = aligned }
    }

    /// A `u` (or the length word of a string or array).
    @inline(__always)
    public mutating func uint32() -> UInt32 {
        align(4)
        guard offset + 4 <= bytes.count else { fail(); return 0 }
        let raw = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return swapped ? raw.byteSwapped : raw
    }

    /// An `i`.
    @inline(__always)
    public mutating func int32() -> Int32 { Int32(bitPattern: uint32()) }

    /// The bytes of an `s` or `o` (without its terminating NUL), valid while the body is.
    @inline(__always)
    public mutating func stringBytes() -> UnsafeRawBufferPointer {
        let length = Int(uint32())
        // length + NUL must fit.
        guard !failed, length < bytes.count - offset else {
            fail()
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        offset += length + 1
        return slice
    }

    /// An `s` or `o` as a Swift string.
    @inline(__always)
    public mutating func string() -> String {
        let slice = stringBytes()
        return slice.isEmpty ? "" : String(decoding: slice, as: UTF8.self)
    }

    /// Starts an array: reads its length and skips the padding before the first element.
    /// - Parameter elementAlignment: 8 for structs, 4 for `u`/`i`/`s`, and so on.
    /// - Returns: the offset just past the array's last element (compare with ``offset``).
    @inline(__always)
    public mutating func beginArray(elementAlignment: Int) -> Int {
        let length = Int(uint32())
        align(elementAlignment)
        guard !failed, length <= bytes.count - offset else {
            fail()
            return offset
        }
        return offset + length
    }

    /// Skips to `end` (the value ``beginArray(elementAlignment:)`` returned), e.g. an array the
    /// decoder does not want.
    public mutating func skip(to end: Int) {
        if end < offset || end > bytes.count { fail() } else { offset = end }
    }

    private mutating func fail() {
        failed = true
        offset = bytes.count
    }
}

extension DBusReader {
    /// Runs `body` over the message body in wire format, when this reader is at the start of a
    /// whole message (the reader a decode closure receives). Nil for readers from ``enter()``.
    ///
    /// Costs one copy of the message (`dbus_message_marshal`): about 0.1 ms per MB.
    public func withWireBody<R>(_ body: (inout DBusWireReader) -> R) -> R? {
        guard let message else { return nil }
        var raw: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        guard dbus_message_marshal(message, &raw, &length) != 0, let raw else { return nil }
        defer { dbus_free(raw) }
        let signature = dbus_message_get_signature(message).map { String(cString: $0) } ?? ""
        let whole = UnsafeRawBufferPointer(start: raw, count: Int(length))
        // Fixed header: byte order, type, flags, version, body length, serial, then the header
        // field array (its length at offset 12), padded to 8; the body follows.
        guard whole.count >= 16 else { return nil }
        let bigEndian = whole[0] == UInt8(ascii: "B")
        func word(_ at: Int) -> Int {
            let raw = whole.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            return Int(bigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw))
        }
        let bodyLength = word(4)
        let fieldsLength = word(12)
        let bodyStart = (16 + fieldsLength + 7) & ~7
        guard bodyStart <= whole.count, bodyLength <= whole.count - bodyStart else { return nil }
        var reader = DBusWireReader(body: UnsafeRawBufferPointer(rebasing: whole[bodyStart..<(bodyStart + bodyLength)]),
                                    bigEndian: bigEndian, signature: signature)
        return body(&reader)
    }
}
