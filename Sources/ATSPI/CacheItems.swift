import CAtspiConstants
import DBus

/// `Cache.GetItems` replies: decoding them (straight from the wire bytes, or with libdbus's
/// iterators for Qt's old signature) and linking the items into a tree. Pure: no I/O, tested
/// directly (CacheDecoderTests, TreeBuildTests).
enum CacheItems {
    /// Links cache items into a tree: children in index order, transient ones (index -1) after
    /// them in the order the app listed them. When a path occurs twice, the later item wins.
    static func tree(_ given: [Item], root: String) -> FetchedTree {
        // One hash per path to number the nodes, then everything by number.
        var items = given
        var slotOf: [String: Int] = [:]
        slotOf.reserveCapacity(items.count)
        var repeated = false
        for (index, item) in items.enumerated() where slotOf.updateValue(index, forKey: item.node.path) != nil {
            repeated = true
        }
        if repeated {
            items = items.indices.filter { slotOf[items[$0].node.path] == $0 }.map { items[$0] }
            slotOf.removeAll(keepingCapacity: true)
            for (index, item) in items.enumerated() { slotOf[item.node.path] = index }
        }
        var childCount = [Int32](repeating: 0, count: items.count)
        var parentSlot = [Int](repeating: -1, count: items.count)
        for (index, item) in items.enumerated() {
            guard let parent = item.parent, parent != item.node.path, let slot = slotOf[parent] else { continue }
            parentSlot[index] = slot
            childCount[slot] += 1
        }
        var nodes = items.map(\.node)
        // Children of each parent, grouped with one counting pass.
        var start = [Int](repeating: 0, count: items.count + 1)
        for slot in items.indices { start[slot + 1] = start[slot] + Int(childCount[slot]) }
        var fill = start
        var grouped = [Int](repeating: 0, count: start[items.count])
        for index in items.indices where parentSlot[index] >= 0 {
            grouped[fill[parentSlot[index]]] = index
            fill[parentSlot[index]] += 1
        }
        for slot in items.indices where start[slot] < start[slot + 1] {
            // Stable by index (each group is in item order already); transient ones last.
            let children = grouped[start[slot]..<start[slot + 1]].sorted { a, b in
                let ka = items[a].index < 0 ? Int.max : items[a].index
                let kb = items[b].index < 0 ? Int.max : items[b].index
                return (ka, a) < (kb, b)
            }
            nodes[slot].children = children.map { items[$0].node.path }
        }
        var tree = FetchedTree(numbered: nodes, slots: slotOf, root: root, method: "cache")
        // What the cache left out (see fillGaps), from the counts above.
        for (slot, item) in items.enumerated() {
            // Managed first: whatever count such a table gives, its whole child list is never asked for.
            if childCount[slot] == 0, item.node.states.contains(ATSPI_STATE_MANAGES_DESCENDANTS) {
                tree.managedParents.append(item.node.path)
            } else if item.childCount > Int(childCount[slot]) {
                tree.gapParents.append(item.node.path)
            }
        }
        return tree
    }

    /// One `Cache.GetItems` entry.
    struct Item: Sendable {
        var node: AccessibleNode
        var parent: String?
        var index: Int
        /// How many children the app says the object has (-1: not given: defunct objects,
        /// menus, MANAGES_DESCENDANTS, Qt's old signature).
        var childCount: Int = -1
    }

    /// The current `Cache.GetItems` signature.
    static let cacheSignature = "a((so)(so)(so)iiassusau)"

    /// Decodes `a((so)(so)(so)iiassusau)` straight from the wire bytes, or Qt's old
    /// `a((so)(so)(so)a(so)assusau)` (and anything unexpected) with libdbus's iterators.
    @Sendable static func decode(_ reader: inout DBusReader) -> [Item] {
        if let items = reader.withWireBody({ wire -> [Item]? in
            wire.signature == cacheSignature ? decode(wire: &wire) : nil
        }), let items {
            return items
        }
        return decodeIterating(&reader)
    }

    /// The wire-format decoder; nil if the body is not what its signature promised.
    static func decode(wire: inout DBusWireReader) -> [Item]? {
        let end = wire.beginArray(elementAlignment: 8)
        var items: [Item] = []
        items.reserveCapacity(min(200_000, (end - wire.offset) / 160 + 1))
        while wire.offset < end, !wire.failed {
            wire.align(8)
            // Object: (bus name, path).
            wire.align(8)
            _ = wire.stringBytes()
            let path = wire.string()
            // Application: unused.
            wire.align(8)
            _ = wire.stringBytes()
            _ = wire.stringBytes()
            // Parent.
            wire.align(8)
            _ = wire.stringBytes()
            let parent = wire.string()
            let index = Int(wire.int32())
            let childCount = Int(wire.int32())
            var interfaces: InterfaceSet = []
            let interfacesEnd = wire.beginArray(elementAlignment: 4)
            while wire.offset < interfacesEnd, !wire.failed {
                interfaces.formUnion(InterfaceSet(nameBytes: wire.stringBytes()))
            }
            let name = wire.string()
            let role = wire.uint32()
            let description = wire.string()
            var bits: UInt64 = 0
            let statesEnd = wire.beginArray(elementAlignment: 4)
            var word = 0
            while wire.offset < statesEnd, !wire.failed {
                let value = wire.uint32()
                if word < 2 { bits |= UInt64(value) << (32 * UInt64(word)) }
                word += 1
            }
            items.append(Item(
                node: AccessibleNode(path: path, role: role, name: name, description: description,
                                     states: StateSet(bits: bits), interfaces: interfaces, children: []),
                parent: parent, index: index, childCount: childCount))
        }
        return wire.failed ? nil : items
    }

    /// The iterator decoder: any signature with the same leading fields, including Qt's old
    /// `a((so)(so)(so)a(so)assusau)`.
    static func decodeIterating(_ reader: inout DBusReader) -> [Item] {
        guard var array = reader.enter() else { return [] }
        var items: [Item] = []
        while array.type != nil {
            defer { array.advance() }
            guard var item = array.enter() else { continue }
            guard var selfRef = item.enter() else { continue }
            selfRef.advance()
            guard let path = selfRef.string() else { continue }
            item.advance()  // application
            item.advance()
            var parent: String?
            if var parentRef = item.enter() {
                parentRef.advance()
                parent = parentRef.string()
            }
            item.advance()
            var index = -1
            var childCount = -1
            if item.type == "i" {
                index = Int(item.integer() ?? -1)
                item.advance()
                childCount = Int(item.integer() ?? -1)
            }
            item.advance()
            var interfaceNames: [String] = []
            if var list = item.enter() {
                while let name = list.string() {
                    interfaceNames.append(name)
                    list.advance()
                }
            }
            item.advance()
            let name = item.string() ?? ""
            item.advance()
            let role = UInt32(truncatingIfNeeded: item.integer() ?? 0)
            item.advance()
            let description = item.string() ?? ""
            item.advance()
            let words = item.words()
            items.append(Item(
                node: AccessibleNode(path: path, role: role, name: name, description: description,
                                     states: StateSet(words: words), interfaces: InterfaceSet(names: interfaceNames),
                                     children: []),
                parent: parent, index: index, childCount: childCount))
        }
        return items
    }
}
