@testable import ATSPI
@testable import DBus
import Foundation
import Testing

/// The wire-format decoder of `Cache.GetItems` against hand-marshalled bodies (no desktop) and
/// against libdbus's iterators on a real GTK3 reply.
@Suite("Cache.GetItems decoding")
struct CacheDecoderTests {
    struct Item: Equatable {
        var path: String
        var parent: String
        var index: Int32
        var interfaces: [String]
        var name: String
        var role: UInt32
        var description: String
        var states: [UInt32]
    }

    /// Marshals `a((so)(so)(so)iiassusau)` little-endian, as libdbus would.
    static func marshal(_ items: [Item]) -> [UInt8] {
        var out: [UInt8] = []
        func pad(_ n: Int) { while out.count % n != 0 { out.append(0) } }
        func u32(_ v: UInt32) { pad(4); withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func string(_ s: String) { u32(UInt32(s.utf8.count)); out.append(contentsOf: s.utf8); out.append(0) }
        func ref(_ name: String, _ path: String) { pad(8); string(name); string(path) }
        u32(0)
        let lengthAt = out.count - 4
        pad(8)
        let start = out.count
        for item in items {
            pad(8)
            ref(":1.42", item.path)
            ref(":1.42", "/org/a11y/atspi/accessible/root")
            ref(":1.42", item.parent)
            u32(UInt32(bitPattern: item.index))
            u32(3)
            u32(0)
            let interfacesAt = out.count - 4
            let interfacesStart = out.count
            for name in item.interfaces { string(name) }
            let interfacesLength = UInt32(out.count - interfacesStart)
            withUnsafeBytes(of: interfacesLength.littleEndian) { out.replaceSubrange(interfacesAt..<interfacesAt + 4, with: $0) }
            string(item.name)
            u32(item.role)
            string(item.description)
            u32(UInt32(item.states.count * 4))
            for word in item.states { u32(word) }
        }
        let length = UInt32(out.count - start)
        withUnsafeBytes(of: length.littleEndian) { out.replaceSubrange(lengthAt..<lengthAt + 4, with: $0) }
        return out
    }

    static let sample: [Item] = [
        Item(path: "/org/a11y/atspi/accessible/1", parent: "/org/a11y/atspi/accessible/root", index: 0,
             interfaces: ["org.a11y.atspi.Accessible", "org.a11y.atspi.Component", "org.a11y.atspi.Action"],
             name: "Submit \"now\"\n\u{202E}évil\u{0}", role: 43, description: "", states: [0x0100_0100, 0x1]),
        Item(path: "/org/a11y/atspi/accessible/2", parent: "/org/a11y/atspi/accessible/1", index: -1,
             interfaces: [], name: "", role: 40, description: "a description 𝄞", states: []),
        Item(path: "/org/a11y/atspi/accessible/3", parent: "/org/a11y/atspi/accessible/1", index: 7,
             interfaces: ["org.a11y.atspi.Text", "org.a11y.atspi.EditableText", "org.a11y.atspi.Value",
                          "org.a11y.atspi.Selection", "org.a11y.atspi.Collection", "org.a11y.atspi.Application",
                          "org.a11y.atspi.Textx", "org.a11y.atspi.", "com.example.Text"],
             name: String(repeating: "long name ", count: 50), role: 61, description: "d", states: [1, 2, 3]),
    ]

    @Test("Hand-marshalled items decode field by field")
    func decodesMarshalledItems() throws {
        let bytes = Self.marshal(Self.sample)
        let decoded = try #require(bytes.withUnsafeBytes { raw -> [CacheItems.Item]? in
            var wire = DBusWireReader(body: raw, bigEndian: false, signature: CacheItems.cacheSignature)
            return CacheItems.decode(wire: &wire)
        })
        #expect(decoded.count == Self.sample.count)
        for (item, expected) in zip(decoded, Self.sample) {
            #expect(item.node.path == expected.path)
            #expect(item.parent == expected.parent)
            #expect(item.index == Int(expected.index))
            #expect(item.node.name == expected.name)
            #expect(item.node.role == expected.role)
            #expect(item.node.description == expected.description)
            #expect(item.node.states == StateSet(words: expected.states))
            #expect(item.node.interfaces == InterfaceSet(names: expected.interfaces))
        }
    }

    @Test("Every truncation of a body fails cleanly (never reads out of bounds)")
    func truncatedBodies() {
        let bytes = Self.marshal(Self.sample)
        for length in 0..<bytes.count {
            let result = bytes[0..<length].withUnsafeBytes { raw -> [CacheItems.Item]? in
                var wire = DBusWireReader(body: raw, bigEndian: false, signature: CacheItems.cacheSignature)
                return CacheItems.decode(wire: &wire)
            }
            #expect(result == nil, "a body cut at \(length) of \(bytes.count) bytes decoded")
        }
        // Garbage lengths: every byte flipped in turn must not crash (results may differ).
        for position in 0..<bytes.count {
            var damaged = bytes
            damaged[position] ^= 0xFF
            _ = damaged.withUnsafeBytes { raw -> [CacheItems.Item]? in
                var wire = DBusWireReader(body: raw, bigEndian: false, signature: CacheItems.cacheSignature)
                return CacheItems.decode(wire: &wire)
            }
        }
    }

    @Test("On a real GTK3 reply the wire decoder and libdbus's iterators agree",
          .enabled(if: Desktop.enabled, Desktop.reason))
    func wireMatchesIterators() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 20, service: service)
        let handle = try await service.registry.resolve(app.name)
        let (wire, iterated) = try await service.calls.callDecoding(handle, "/org/a11y/atspi/cache", "org.a11y.atspi.Cache",
                                                              "GetItems", timeout: .seconds(30)) { reader in
            var copy = reader
            let wire = reader.withWireBody { body in CacheItems.decode(wire: &body) } ?? nil
            return (wire, CacheItems.decodeIterating(&copy))
        }
        let items = try #require(wire)
        #expect(items.count > 80)
        #expect(items.count == iterated.count)
        for (a, b) in zip(items, iterated) {
            #expect(a.node.path == b.node.path)
            #expect(a.parent == b.parent)
            #expect(a.index == b.index)
            #expect(a.node.name == b.node.name)
            #expect(a.node.role == b.node.role)
            #expect(a.node.description == b.node.description)
            #expect(a.node.states == b.node.states)
            #expect(a.node.interfaces == b.node.interfaces)
        }
    }
}
