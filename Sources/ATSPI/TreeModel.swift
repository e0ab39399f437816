import CAtspiConstants

/// One accessible object as read from an app.
struct AccessibleNode: Sendable {
    var path: String
    var role: UInt32
    var name: String
    var description: String
    var states: StateSet
    var interfaces: InterfaceSet
    /// Child object paths in order (same app).
    var children: [String]
    /// False when a walk left `interfaces` out (see ``AccessibilityService/withInterfaces(_:_:deadline:)``).
    var interfacesRead = true
    /// It manages its descendants and has more children than ``children`` holds.
    var childrenCapped = false

    var isPassword: Bool { role == AtspiNames.passwordRole }
}

/// A part of an app's tree: its nodes, the root, and whether reading stopped early.
///
/// Nodes are numbered (``slot(of:)``), so walking the tree for output costs one path lookup
/// per node and no sets of paths.
struct FetchedTree: Sendable {
    /// The nodes, in no particular order.
    private(set) var nodes: [AccessibleNode]
    /// The index in ``nodes`` of each path.
    private var slots: [String: Int]
    var root: String
    var truncated: Bool
    var deadlineReached: Bool
    var method: String
    /// GTK 4.8 sets SHOWING only on windows; inside them VISIBLE is what it has.
    var visibleMeansShowing = false
    /// Nodes of a walk whose properties came from `Cache.GetItems` (GTK4).
    var cacheFilled = 0
    /// Nodes `Cache.GetItems` lacked that were read one by one (``AccessibilityService/fillGaps``).
    var gapsFilled = 0
    /// Containers managing their descendants whose children were cut at ``AccessibilityService/managedChildLimit``.
    var childrenCapped = 0
    /// `Cache.GetItems` trees: objects with more children than the cache listed, and objects
    /// managing their descendants whose children it left out (``AccessibilityService/fillGaps``).
    var gapParents: [String] = []
    var managedParents: [String] = []

    init(nodes: [String: AccessibleNode], root: String, truncated: Bool, deadlineReached: Bool, method: String,
         visibleMeansShowing: Bool = false, cacheFilled: Int = 0)
    {
        self.init(numbered: Array(nodes.values), slots: [:], root: root, method: method)
        slots.reserveCapacity(self.nodes.count)
        for (slot, node) in self.nodes.enumerated() { slots[node.path] = slot }
        self.truncated = truncated
        self.deadlineReached = deadlineReached
        self.visibleMeansShowing = visibleMeansShowing
        self.cacheFilled = cacheFilled
    }

    /// Nodes already numbered: `slots[node.path]` is the index of each node, one node a path.
    init(numbered nodes: [AccessibleNode], slots: [String: Int], root: String, method: String) {
        self.nodes = nodes
        self.slots = slots
        self.root = root
        self.truncated = false
        self.deadlineReached = false
        self.method = method
    }

    /// The index in ``nodes`` of the node at `path`.
    func slot(of path: String) -> Int? { slots[path] }

    /// The node at `path`.
    subscript(path: String) -> AccessibleNode? { slots[path].map { nodes[$0] } }

    /// Sets the children of the node at `path`, if there is one.
    mutating func setChildren(_ children: [String], of path: String) {
        if let slot = slots[path] { nodes[slot].children = children }
    }

    /// Adds the nodes whose paths are not in the tree yet (nodes there keep what they have).
    mutating func add(_ more: some Sequence<AccessibleNode>) {
        for node in more where slots[node.path] == nil {
            slots[node.path] = nodes.count
            nodes.append(node)
        }
    }

    func isShown(_ node: AccessibleNode) -> Bool {
        node.states.isShowing || (visibleMeansShowing && node.states.contains(ATSPI_STATE_VISIBLE))
    }
}
