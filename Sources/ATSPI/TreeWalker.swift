import CAtspiConstants
import DBus

/// Reading an app's tree: one `Cache.GetItems` where the toolkit has a full cache, otherwise
/// a pipelined breadth-first walk.
extension AccessibilityService {
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
                                                 timeout: config.readTimeout).first
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
        let timeoutCap = config.readTimeout
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
            let items: [CacheItems.Item]
            do {
                items = try await calls.callDecoding(app, Atspi.cachePath, Atspi.cache, "GetItems",
                                               timeout: deadline.remaining(cap: config.bulkCallTimeout),
                                               deadline: deadline, decode: CacheItems.decode)
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
                                                timeout: deadline.remaining(cap: config.readTimeout),
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
