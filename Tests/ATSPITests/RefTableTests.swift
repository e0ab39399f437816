@testable import ATSPI
import Testing

/// The ref table stays bounded however many elements are shown, and drops the least recently used.
@Suite("Element ref table bounds")
struct RefTableTests {
    @Test("past maxRefs the least recently used refs go; refs in use survive")
    func countBound() {
        let table = RefTable(limits: .init(maxRefs: 100, maxBytes: 1 << 30))
        let kept = table.ref(app: ":1.1", path: "/kept", role: 42, name: "Submit")
        for i in 0..<1_000 {
            _ = table.ref(app: ":1.1", path: "/n\(i)", role: 42, name: "n\(i)")
            if i % 50 == 0 { #expect(table.lookup(kept) != nil) }  // used now and then: stays
        }
        #expect(table.usage.refs <= 100)
        #expect(table.lookup(kept)?.path == "/kept")
        #expect(table.existing(app: ":1.1", path: "/n0") == nil)  // long unused: dropped
        #expect(table.existing(app: ":1.1", path: "/n999") != nil)
    }

    @Test("huge names count against the byte bound")
    func byteBound() {
        let table = RefTable(limits: .init(maxRefs: 1_000_000, maxBytes: 10 << 20))
        let huge = String(repeating: "x", count: 1 << 20)
        for i in 0..<50 { _ = table.ref(app: ":1.1", path: "/big\(i)", role: 42, name: huge) }
        #expect(table.usage.bytes <= 10 << 20)
        #expect(table.usage.refs < 50)
        #expect(table.existing(app: ":1.1", path: "/big49")?.entry.name.utf8.count == 1 << 20)
    }

    @Test("one call larger than the bound keeps every ref it returns")
    func bigBatchKeepsItsRefs() {
        let table = RefTable(limits: .init(maxRefs: 100, maxBytes: 1 << 30))
        let old = table.refs(app: ":1.1", elements: (0..<50).map { ("/old\($0)", UInt32(42), "o") })
        let batch = table.refs(app: ":1.1", elements: (0..<300).map { ("/b\($0)", UInt32(42), "b") })
        #expect(batch.allSatisfy { table.lookup($0) != nil })
        #expect(old.allSatisfy { table.lookup($0) == nil })
    }

    @Test("the same element keeps its ref; a new role gets a new ref; removing an app frees its bytes")
    func identityAndRemoval() {
        let table = RefTable()
        let a = table.ref(app: ":1.1", path: "/x", role: 42, name: "A")
        #expect(table.ref(app: ":1.1", path: "/x", role: 42, name: "A renamed") == a)
        #expect(table.lookup(a)?.name == "A renamed")
        let b = table.ref(app: ":1.1", path: "/x", role: 7, name: "B")
        #expect(b != a)
        _ = table.ref(app: ":1.2", path: "/y", role: 42, name: "C")
        table.removeApp(":1.1")
        #expect(table.lookup(a) == nil && table.lookup(b) == nil)
        #expect(table.usage.refs == 1)
        #expect(table.usage.bytes == 96 + 4 + 2 + 1)
    }
}
