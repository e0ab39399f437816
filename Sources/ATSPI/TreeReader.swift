import DBus
import Glibc

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

/// A point in time by the monotonic clock, to check request deadlines.
struct Deadline: Sendable {
    let nanoseconds: UInt64

    init(after duration: Duration) {
        let (seconds, attoseconds) = duration.components
        nanoseconds = Self.now() + UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    var hasPassed: Bool { Self.now() >= nanoseconds }

    private init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// A deadline `share` of the way from now to this one.
    func fraction(_ share: Double) -> Deadline {
        let now = Self.now()
        guard nanoseconds > now else { return self }
        return Deadline(nanoseconds: now + UInt64(Double(nanoseconds - now) * share))
    }

    /// The time left, at least 1 ms, at most `cap`.
    func remaining(cap: Duration) -> Duration {
        let now = Self.now()
        guard nanoseconds > now else { return .milliseconds(1) }
        return min(cap, .nanoseconds(Int64(nanoseconds - now)))
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

extension AccessibilityService {
    /// The child paths of an object.
    func childPaths(_ app: AppHandle, of path: String) async throws(AccessibilityError) -> [String] {
        let reply = try await call(app, path, Atspi.accessible, "GetChildren", timeout: config.smallCallTimeout)
        return Self.paths(fromChildren: reply.first)
    }

    static func paths(fromChildren value: DBusValue?) -> [String] {
        (value?.arrayValue ?? []).compactMap { $0.objectReference?.path }.filter { $0 != "/org/a11y/atspi/null" }
    }

    /// Reads role, states, name, description, interfaces (unless `interfaces` is false) and
    /// children (if `withChildren`) of many objects at once. Objects that vanished in the
    /// meantime are left out.
    ///
    /// Children are read in a second batch, after `ChildCount` came with the first: leaves need
    /// no `GetChildren` at all, and a container that manages its descendants (a Qt table) is
    /// asked only for its first ``managedChildLimit`` children by index, since `GetChildren`
    /// would make the app create every cell (``AccessibleNode/childrenCapped`` says it has more).
    func readNodes(_ app: AppHandle, paths: [String], withChildren: Bool, interfaces readInterfaces: Bool = true,
                   timeout: Duration? = nil, deadline: Deadline? = nil) async throws(AccessibilityError) -> [AccessibleNode]
    {
        let perNode = 4 + (readInterfaces ? 1 : 0) + (withChildren ? 1 : 0)
        var calls: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        calls.reserveCapacity(paths.count * perNode)
        for path in paths {
            calls.append((path, Atspi.accessible, "GetRole", []))
            calls.append((path, Atspi.accessible, "GetState", []))
            calls.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Name")]))
            calls.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Description")]))
            if readInterfaces { calls.append((path, Atspi.accessible, "GetInterfaces", [])) }
            if withChildren { calls.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("ChildCount")])) }
        }
        let results = try await batch(app, calls, timeout: timeout ?? config.smallCallTimeout, deadline: deadline)
        var nodes: [AccessibleNode] = []
        nodes.reserveCapacity(paths.count)
        var childCounts: [Int?] = []
        for (index, path) in paths.enumerated() {
            var slot = index * perNode
            guard case .success(let roleReply) = results[slot], let role = roleReply.first?.integerValue,
                  case .success(let stateReply) = results[slot + 1]
            else { continue }
            let words = (stateReply.first?.arrayValue ?? []).compactMap { $0.integerValue.map { UInt32(truncatingIfNeeded: $0) } }
            let name = (try? results[slot + 2].get())?.first?.stringValue ?? ""
            let description = (try? results[slot + 3].get())?.first?.stringValue ?? ""
            slot += 4
            var interfaces = InterfaceSet()
            if readInterfaces {
                interfaces = Self.interfaces(from: results[slot])
                slot += 1
            }
            if withChildren { childCounts.append(Self.childCount(from: results[slot])) }
            nodes.append(AccessibleNode(path: path, role: UInt32(truncatingIfNeeded: role), name: name,
                                        description: description, states: StateSet(words: words),
                                        interfaces: interfaces, children: [], interfacesRead: readInterfaces))
        }
        guard withChildren else { return nodes }
        // An object whose count did not come is asked for its children all the same.
        var full: [Int] = []
        var managed: [(index: Int, count: Int)] = []
        for (index, count) in childCounts.enumerated() where count.map({ $0 > 0 }) ?? true {
            if nodes[index].states.contains(ATSPI_STATE_MANAGES_DESCENDANTS), let count {
                managed.append((index, count))
            } else {
                full.append(index)
            }
        }
        let remaining = timeout ?? config.smallCallTimeout
        let lists = try await batch(app, full.map { (nodes[$0].path, Atspi.accessible, "GetChildren", []) },
                                    timeout: deadline?.remaining(cap: remaining) ?? remaining, deadline: deadline)
        for (index, result) in zip(full, lists) { nodes[index].children = Self.paths(fromChildren: (try? result.get())?.first) }
        if !managed.isEmpty {
            let first = try await readManagedChildren(app, of: managed.map { (nodes[$0.index].path, $0.count) },
                                                      limit: Self.managedChildLimit,
                                                      deadline: deadline ?? Deadline(after: remaining))
            for ((index, _), read) in zip(managed, first) {
                nodes[index].children = read.children ?? []
                nodes[index].childrenCapped = read.capped
            }
        }
        return nodes
    }

    static func interfaces(from reply: Result<[DBusValue], DBusError>) -> InterfaceSet {
        InterfaceSet(names: ((try? reply.get())?.first?.arrayValue ?? []).compactMap(\.stringValue))
    }

    /// The nodes with their interfaces, reading them (one batch) for those a walk left them out
    /// of. Nodes that vanished keep an empty set.
    func withInterfaces(_ app: AppHandle, _ nodes: [AccessibleNode], deadline: Deadline) async throws(AccessibilityError)
        -> [AccessibleNode]
    {
        let missing = nodes.indices.filter { !nodes[$0].interfacesRead }
        guard !missing.isEmpty else { return nodes }
        let results = try await batch(app, missing.map { (nodes[$0].path, Atspi.accessible, "GetInterfaces", []) },
                                      timeout: deadline.remaining(cap: config.smallCallTimeout), deadline: deadline)
        var completed = nodes
        for (offset, index) in missing.enumerated() {
            completed[index].interfaces = Self.interfaces(from: results[offset])
            completed[index].interfacesRead = true
        }
        return completed
    }

    /// Reads the tree under `root`: one `Cache.GetItems` for toolkits with a full cache,
    /// otherwise a breadth-first walk that sends all calls of a level at once.
    func fetchTree(_ app: AppHandle, root: String, maxDepth: Int?, maxNodes: Int, pruneHidden: Bool,
                   deadline: Deadline) async throws(AccessibilityError) -> FetchedTree
    {
        if app.hasFullCache, let tree = try await fetchFromCache(app, root: root, deadline: deadline) {
            return tree
        }
        return try await walk(app, root: root, maxDepth: maxDepth, maxNodes: maxNodes, pruneHidden: pruneHidden,
                              deadline: deadline)
    }

    /// Reads the tree under `root` node by node, breadth first, keeping a few batches of calls
    /// in flight: a new batch is sent as soon as one comes back, so the app never waits for us
    /// between levels or chunks.
    ///
    /// GTK4 walks with `GetChildren` alone: that realizes every context it returns, so one
    /// `Cache.GetItems` afterwards has the role, name, description, states and interfaces of
    /// all of them (1 call per node instead of 6). Qt reads 5 calls per node (no interfaces).
    private func walk(_ app: AppHandle, root: String, maxDepth: Int?, maxNodes: Int, pruneHidden: Bool,
                      deadline: Deadline) async throws(AccessibilityError) -> FetchedTree
    {
        let visibleMeansShowing = app.toolkit == "GTK"
        let probe = FetchedTree(nodes: [:], root: root, truncated: false, deadlineReached: false, method: "walk",
                                visibleMeansShowing: visibleMeansShowing)
        let expandRoot = maxDepth.map { 0 < $0 } ?? true
        // The root is always read, so a snapshot cut short still says what it is of.
        guard let rootNode = try await readNodes(app, paths: [root], withChildren: expandRoot,
                                                 timeout: config.smallCallTimeout).first
        else { throw .elementGone("element no longer exists") }
        // GetItems is all or nothing: with little time left a walk cut short would have found
        // nodes but no properties, so short deadlines read node by node, shallowest first.
        let childrenOnly = app.toolkit == "GTK"
            && deadline.remaining(cap: Self.cacheFillMinimumTime) >= Self.cacheFillMinimumTime
        var walk = WalkState(root: rootNode, maxNodes: maxNodes)
        if expandRoot { walk.enqueue(rootNode.children, depth: 1) }
        // GTK4: keep time for the one GetItems that follows the children walk. Its reply costs
        // the app far less per node than a GetChildren call, but it also holds contexts earlier
        // walks realized; half the time leaves a wide margin, so a walk cut short by the
        // deadline still returns the nodes it found (and find still finds shallow ones).
        let walkDeadline = childrenOnly ? deadline.fraction(0.5) : deadline
        try await walkLevels(app, state: &walk, childrenOnly: childrenOnly, maxDepth: maxDepth,
                             prune: pruneHidden && !childrenOnly ? { !probe.isShown($0) } : nil,
                             walkDeadline: walkDeadline, deadline: deadline)
        var nodes = walk.nodes
        var deadlineReached = walk.deadlineReached
        var cacheFilled = 0
        if childrenOnly {
            let filled = try await fillProperties(app, walked: walk.walkedChildren, deadline: deadline)
            nodes.merge(filled.nodes) { old, _ in old }
            deadlineReached = deadlineReached || filled.deadlineReached
            cacheFilled = filled.fromCache
        }
        var tree = FetchedTree(nodes: nodes, root: root,
                               truncated: walk.truncated || deadlineReached || walk.childrenCapped > 0,
                               deadlineReached: deadlineReached, method: "walk", visibleMeansShowing: visibleMeansShowing,
                               cacheFilled: cacheFilled)
        tree.childrenCapped = walk.childrenCapped
        return tree
    }

    /// Calls per batch of a walk and batches in flight at once. An app answers one call after
    /// another, so the per-call timeout has to cover every call queued ahead of the last one:
    /// this keeps about as many in flight as the old 512-call chunks, without the pauses.
    static let walkCallsPerBatch = 256
    static let walkBatchesInFlight = 2

    /// The progress of a walk.
    struct WalkState {
        /// Nodes read in full (all of them, unless the walk reads children only).
        var nodes: [String: AccessibleNode]
        /// Children-only walks: every node found, with its children if they were asked for
        /// (nil: depth limit).
        var walkedChildren: [(path: String, children: [String]?)] = []
        var queue: [(path: String, depth: Int)] = []
        var head = 0
        var seen: Set<String>
        /// Nodes counted against `maxNodes` (read or queued to be).
        var counted = 1
        let maxNodes: Int
        var truncated = false
        var deadlineReached = false
        /// Nodes managing their descendants whose children were cut at ``managedChildLimit``.
        var childrenCapped = 0

        init(root: AccessibleNode, maxNodes: Int) {
            nodes = [root.path: root]
            seen = [root.path]
            self.maxNodes = maxNodes
            childrenCapped = root.childrenCapped ? 1 : 0
        }

        /// Queues the children of a node that were not seen yet, up to `maxNodes`.
        mutating func enqueue(_ children: [String], depth: Int) {
            for child in children where !seen.contains(child) {
                if counted >= maxNodes {
                    truncated = true
                    return
                }
                seen.insert(child)
                counted += 1
                queue.append((child, depth))
            }
        }

        /// The next batch: queued nodes of one depth (so one `withChildren` fits all).
        mutating func nextBatch(size: Int) -> (paths: [String], depth: Int)? {
            guard head < queue.count else { return nil }
            let depth = queue[head].depth
            var paths: [String] = []
            while head < queue.count, paths.count < size, queue[head].depth == depth {
                paths.append(queue[head].path)
                head += 1
            }
            return (paths, depth)
        }
    }

    /// What one batch of a walk brought back.
    private enum WalkBatch: Sendable {
        case nodes([AccessibleNode], depth: Int)
        case children([(path: String, children: [String]?)], depth: Int)
        case failed(AccessibilityError)
    }

    /// Walks below the root with up to ``walkBatchesInFlight`` batches outstanding.
    private func walkLevels(_ app: AppHandle, state: inout WalkState, childrenOnly: Bool, maxDepth: Int?,
                            prune: ((AccessibleNode) -> Bool)?, walkDeadline: Deadline,
                            deadline: Deadline) async throws(AccessibilityError)
    {
        let service = self
        let timeoutCap = config.smallCallTimeout
        var failure: AccessibilityError?
        await withTaskGroup(of: WalkBatch.self) { group in
            var inFlight = 0
            while true {
                while inFlight < Self.walkBatchesInFlight, failure == nil, !state.deadlineReached {
                    if walkDeadline.hasPassed {
                        state.deadlineReached = true
                        break
                    }
                    guard let (paths, depth) = state.nextBatch(size: Self.walkCallsPerBatch / (childrenOnly ? 1 : 5))
                    else { break }
                    let expand = maxDepth.map { depth < $0 } ?? true
                    if childrenOnly, !expand {
                        // At the depth limit a children-only walk needs nothing from the app here.
                        state.walkedChildren += paths.map { ($0, nil) }
                        continue
                    }
                    inFlight += 1
                    group.addTask {
                        do throws(AccessibilityError) {
                            let timeout = deadline.remaining(cap: timeoutCap)
                            if childrenOnly {
                                return .children(try await service.readChildren(app, paths: paths, timeout: timeout,
                                                                                deadline: deadline), depth: depth)
                            }
                            // Interfaces only matter to a few requests; they read them afterwards.
                            return .nodes(try await service.readNodes(app, paths: paths, withChildren: expand,
                                                                      interfaces: false, timeout: timeout,
                                                                      deadline: deadline), depth: depth)
                        } catch {
                            return .failed(error)
                        }
                    }
                }
                guard inFlight > 0, let batch = await group.next() else { break }
                inFlight -= 1
                switch batch {
                case .failed(let error):
                    if error == .deadlineReached {
                        state.deadlineReached = true
                    } else if failure == nil {
                        failure = error
                    }
                case .nodes(let read, let depth):
                    for node in read {
                        state.nodes[node.path] = node
                        if node.childrenCapped { state.childrenCapped += 1 }
                        if prune?(node) != true { state.enqueue(node.children, depth: depth + 1) }
                    }
                case .children(let read, let depth):
                    for entry in read {
                        state.walkedChildren.append(entry)
                        state.enqueue(entry.children ?? [], depth: depth + 1)
                    }
                }
            }
        }
        if let failure { throw failure }
        if state.deadlineReached { state.truncated = true }
        // Nodes found but never read (deadline, or an error above) are left out.
    }

    /// `GetChildren` of many objects at once; objects that vanished have nil children.
    func readChildren(_ app: AppHandle, paths: [String], timeout: Duration, deadline: Deadline?)
        async throws(AccessibilityError) -> [(path: String, children: [String]?)]
    {
        let results = try await batch(app, paths.map { ($0, Atspi.accessible, "GetChildren", []) },
                                      timeout: timeout, deadline: deadline)
        return zip(paths, results).map { path, result in
            (path, (try? result.get()).map { Self.paths(fromChildren: $0.first) })
        }
    }

    /// GTK4 walks read children first and properties last only with at least this much time.
    static let cacheFillMinimumTime: Duration = .seconds(2)

    /// Walked nodes needed for fewer than this many are read one by one rather than with
    /// `Cache.GetItems`, whose reply holds every realized context of the app.
    static let cacheFillMinimum = 64

    /// The properties of nodes found by a children-only walk (GTK4), from one `Cache.GetItems`:
    /// GTK4 serves it from its realized contexts, which the walk's `GetChildren` calls have just
    /// realized, with the values its per-property calls return. Nodes it lacks are read one by
    /// one; nodes that vanished are left out.
    private func fillProperties(_ app: AppHandle, walked: [(path: String, children: [String]?)],
                                deadline: Deadline) async throws(AccessibilityError)
        -> (nodes: [String: AccessibleNode], deadlineReached: Bool, fromCache: Int)
    {
        var nodes: [String: AccessibleNode] = [:]
        nodes.reserveCapacity(walked.count)
        var missing: [String] = []
        if walked.count >= Self.cacheFillMinimum, !deadline.hasPassed {
            let items: [CacheItem]
            do {
                items = try await callDecoding(app, Atspi.cachePath, Atspi.cache, "GetItems",
                                               timeout: deadline.remaining(cap: config.bulkCallTimeout),
                                               deadline: deadline, decode: Self.decodeCacheItems)
            } catch let error where error == .deadlineReached {
                return ([:], true, 0)
            } catch let error where error.meansNoCache {
                items = []
            }
            var byPath: [String: AccessibleNode] = [:]
            byPath.reserveCapacity(items.count)
            for item in items { byPath[item.node.path] = item.node }
            for entry in walked {
                if var node = byPath[entry.path] {
                    node.children = entry.children ?? []
                    nodes[entry.path] = node
                } else {
                    missing.append(entry.path)
                }
            }
        } else {
            missing = walked.map(\.path)
        }
        let fromCache = nodes.count
        guard !missing.isEmpty else { return (nodes, false, fromCache) }
        if deadline.hasPassed { return (nodes, true, fromCache) }
        let childrenOf = Dictionary(walked.map { ($0.path, $0.children ?? []) }, uniquingKeysWith: { a, _ in a })
        do {
            for var node in try await readNodes(app, paths: missing, withChildren: false,
                                                timeout: deadline.remaining(cap: config.smallCallTimeout),
                                                deadline: deadline)
            {
                node.children = childrenOf[node.path] ?? []
                nodes[node.path] = node
            }
        } catch let error where error == .deadlineReached {
            return (nodes, true, fromCache)
        }
        return (nodes, false, fromCache)
    }
}
