@testable import ATSPI
import CAtspiConstants
import Testing

/// Linking `Cache.GetItems` items into a tree and walking it for output: pure logic, no app.
@Suite("Tree building and depth-first output")
struct TreeBuildTests {
    static let showing = StateSet(bits: 1 << UInt64(ATSPI_STATE_SHOWING.rawValue))

    static func item(_ path: String, parent: String?, index: Int, childCount: Int = -1, name: String = "",
                     states: StateSet = showing) -> CacheItems.Item
    {
        CacheItems.Item(
            node: AccessibleNode(path: path, role: 42, name: name.isEmpty ? path : name, description: "",
                                 states: states, interfaces: InterfaceSet(), children: []),
            parent: parent, index: index, childCount: childCount)
    }

    static func order(_ tree: FetchedTree, maxDepth: Int? = nil, showingOnly: Bool = false) -> [String] {
        TreeOrder.depthFirst(tree, maxDepth: maxDepth, showingOnly: showingOnly).map {
            "\($0.depth):\($0.node.name)"
        }
    }

    @Test("children by index whatever the item order; transient ones (index -1) last; parents point back")
    func childOrder() {
        let tree = CacheItems.tree([
            Self.item("/c", parent: "/r", index: 2), Self.item("/t", parent: "/r", index: -1),
            Self.item("/a", parent: "/r", index: 0), Self.item("/r", parent: nil, index: -1),
            Self.item("/b", parent: "/r", index: 1), Self.item("/b1", parent: "/b", index: 0),
        ], root: "/r")
        #expect(tree["/r"]?.children == ["/a", "/b", "/c", "/t"])
        let emitted = TreeOrder.depthFirst(tree, maxDepth: nil, showingOnly: false)
        #expect(emitted.map(\.node.path) == ["/r", "/a", "/b", "/b1", "/c", "/t"])
        #expect(emitted.map(\.depth) == [0, 1, 1, 2, 1, 1])
        #expect(emitted.map(\.parentIndex) == [nil, 0, 0, 2, 0, 0])
    }

    @Test("a path listed twice: the later item wins, and it is emitted once")
    func repeatedPath() {
        let tree = CacheItems.tree([
            Self.item("/r", parent: nil, index: -1), Self.item("/a", parent: "/r", index: 0, name: "old"),
            Self.item("/b", parent: "/r", index: 1), Self.item("/a", parent: "/r", index: 0, name: "new"),
        ], root: "/r")
        #expect(tree.nodes.count == 3)
        #expect(tree["/a"]?.name == "new")
        #expect(Self.order(tree) == ["0:/r", "1:new", "1:/b"])
    }

    @Test("a cycle or a node listed under two parents is emitted once; items outside the root are not")
    func cyclesAndStrays() {
        var tree = CacheItems.tree([
            Self.item("/r", parent: "/b", index: 0), Self.item("/a", parent: "/r", index: 0),
            Self.item("/b", parent: "/a", index: 0), Self.item("/elsewhere", parent: "/other", index: 0),
        ], root: "/r")
        tree.setChildren(["/a", "/b", "/a"], of: "/r")
        #expect(Self.order(tree) == ["0:/r", "1:/a", "2:/b"])
    }

    @Test("max depth and the showing filter cut whole subtrees")
    func depthAndShowing() {
        let tree = CacheItems.tree([
            Self.item("/r", parent: nil, index: -1), Self.item("/a", parent: "/r", index: 0),
            Self.item("/a1", parent: "/a", index: 0), Self.item("/h", parent: "/r", index: 1, states: StateSet(bits: 0)),
            Self.item("/h1", parent: "/h", index: 0),
        ], root: "/r")
        #expect(Self.order(tree, maxDepth: 1) == ["0:/r", "1:/a", "1:/h"])
        #expect(Self.order(tree, showingOnly: true) == ["0:/r", "1:/a", "2:/a1"])
        #expect(Self.order(tree) == ["0:/r", "1:/a", "2:/a1", "1:/h", "2:/h1"])
    }

    @Test("gaps: more children than the cache listed; managed: a table with none listed")
    func gapsAndManaged() {
        let managed = StateSet(bits: 1 << UInt64(ATSPI_STATE_MANAGES_DESCENDANTS.rawValue))
        let tree = CacheItems.tree([
            Self.item("/r", parent: nil, index: -1, childCount: 2), Self.item("/a", parent: "/r", index: 0, childCount: 0),
            Self.item("/box", parent: "/r", index: 1, childCount: 3), Self.item("/x", parent: "/box", index: 0, childCount: 0),
            Self.item("/table", parent: "/a", index: 0, childCount: 1_000_000, states: managed),
        ], root: "/r")
        #expect(tree.gapParents == ["/box"])
        #expect(tree.managedParents == ["/table"])
    }

    @Test("adding nodes keeps those already there")
    func addKeepsExisting() {
        var tree = CacheItems.tree([Self.item("/r", parent: nil, index: -1, name: "root")], root: "/r")
        tree.add([AccessibleNode(path: "/r", role: 1, name: "other", description: "", states: Self.showing,
                                 interfaces: InterfaceSet(), children: []),
                  AccessibleNode(path: "/n", role: 1, name: "new", description: "", states: Self.showing,
                                 interfaces: InterfaceSet(), children: [])])
        tree.setChildren(["/n"], of: "/r")
        #expect(tree["/r"]?.name == "root")
        #expect(Self.order(tree) == ["0:root", "1:new"])
    }

    @Test("a managed container's window: the children around the middle, within bounds")
    func managedWindow() {
        #expect(AccessibilityService.window(count: 10, middle: 5, limit: 20) == Array(0..<10))
        #expect(AccessibilityService.window(count: 1000, middle: 500, limit: 7) == Array(497...503))
        #expect(AccessibilityService.window(count: 1000, middle: 1, limit: 10) == Array(0..<10))
        #expect(AccessibilityService.window(count: 1000, middle: 999, limit: 4) == [996, 997, 998, 999])
        #expect(AccessibilityService.window(count: 1000, middle: 3, limit: 0) == [])
    }
}
