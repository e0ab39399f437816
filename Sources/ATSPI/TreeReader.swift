import DBus
import Glibc
import JSONRPC
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

    var isPassword: Bool { role == AtspiNames.passwordRole }
}

/// A part of an app's tree: nodes by path, the root, and whether reading stopped early.
struct FetchedTree: Sendable {
    var nodes: [String: AccessibleNode]
    var root: String
    var truncated: Bool
    var deadlineReached: Bool
    var method: String
    /// GTK 4.8 sets SHOWING only on windows; inside them VISIBLE is what it has.
    var visibleMeansShowing = false

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
    func childPaths(_ app: AppHandle, of path: String) async throws(RPCError) -> [String] {
        let reply = try await call(app, path, Atspi.accessible, "GetChildren", timeout: config.smallCallTimeout)
        return Self.paths(fromChildren: reply.first)
    }

    static func paths(fromChildren value: DBusValue?) -> [String] {
        (value?.arrayValue ?? []).compactMap { $0.objectReference?.path }.filter { $0 != "/org/a11y/atspi/null" }
    }

    /// Reads role, states, name, description, interfaces (and children) of many objects at
    /// once. Objects that vanished in the meantime are left out.
    func readNodes(_ app: AppHandle, paths: [String], withChildren: Bool,
                   timeout: Duration? = nil, deadline: Deadline? = nil) async throws(RPCError) -> [AccessibleNode]
    {
        let perNode = withChildren ? 6 : 5
        var calls: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        calls.reserveCapacity(paths.count * perNode)
        for path in paths {
            calls.append((path, Atspi.accessible, "GetRole", []))
            calls.append((path, Atspi.accessible, "GetState", []))
            calls.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Name")]))
            calls.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Description")]))
            calls.append((path, Atspi.accessible, "GetInterfaces", []))
            if withChildren { calls.append((path, Atspi.accessible, "GetChildren", [])) }
        }
        let results = try await batch(app, calls, timeout: timeout ?? config.smallCallTimeout, deadline: deadline)
        var nodes: [AccessibleNode] = []
        nodes.reserveCapacity(paths.count)
        for (index, path) in paths.enumerated() {
            let base = index * perNode
            guard case .success(let roleReply) = results[base], let role = roleReply.first?.integerValue,
                  case .success(let stateReply) = results[base + 1]
            else { continue }
            let words = (stateReply.first?.arrayValue ?? []).compactMap { $0.integerValue.map { UInt32(truncatingIfNeeded: $0) } }
            let name = (try? results[base + 2].get())?.first?.stringValue ?? ""
            let description = (try? results[base + 3].get())?.first?.stringValue ?? ""
            let interfaces = InterfaceSet(names: ((try? results[base + 4].get())?.first?.arrayValue ?? []).compactMap(\.stringValue))
            let children = withChildren ? Self.paths(fromChildren: (try? results[base + 5].get())?.first) : []
            nodes.append(AccessibleNode(path: path, role: UInt32(truncatingIfNeeded: role), name: name,
                                        description: description, states: StateSet(words: words),
                                        interfaces: interfaces, children: children))
        }
        return nodes
    }

    /// Reads the tree under `root`: one `Cache.GetItems` for toolkits with a full cache,
    /// otherwise a breadth-first walk that sends all calls of a level at once.
    func fetchTree(_ app: AppHandle, root: String, maxDepth: Int?, maxNodes: Int, pruneHidden: Bool,
                   deadline: Deadline) async throws(RPCError) -> FetchedTree
    {
        if app.hasFullCache, let tree = try await fetchFromCache(app, root: root, deadline: deadline) {
            return tree
        }
        return try await walk(app, root: root, maxDepth: maxDepth, maxNodes: maxNodes, pruneHidden: pruneHidden,
                              deadline: deadline)
    }

    private func walk(_ app: AppHandle, root: String, maxDepth: Int?, maxNodes: Int, pruneHidden: Bool,
                      deadline: Deadline) async throws(RPCError) -> FetchedTree
    {
        var nodes: [String: AccessibleNode] = [:]
        var level: [String] = [root]
        var depth = 0
        var truncated = false
        var deadlineReached = false
        let probe = FetchedTree(nodes: [:], root: root, truncated: false, deadlineReached: false, method: "walk",
                                visibleMeansShowing: app.toolkit == "GTK")
        while !level.isEmpty {
            // The root is always read, so a snapshot cut short still says what it is of.
            if depth > 0, deadline.hasPassed {
                deadlineReached = true
                truncated = true
                break
            }
            let expand = maxDepth.map { depth < $0 } ?? true
            let read: [AccessibleNode]
            do {
                read = try await readNodes(app, paths: level, withChildren: expand,
                                           timeout: depth == 0 ? config.smallCallTimeout
                                               : deadline.remaining(cap: config.smallCallTimeout),
                                           deadline: depth == 0 ? nil : deadline)
            } catch let error where error.data?["deadline_reached"] == true && depth > 0 {
                deadlineReached = true
                truncated = true
                break
            }
            if depth == 0, read.isEmpty { throw RPCError(.elementNotFound, "element no longer exists") }
            var next: [String] = []
            for node in read {
                if nodes.count >= maxNodes {
                    truncated = true
                    break
                }
                nodes[node.path] = node
                if !pruneHidden || depth == 0 || probe.isShown(node) {
                    next.append(contentsOf: node.children.filter { nodes[$0] == nil })
                }
            }
            if truncated { break }
            level = next
            depth += 1
        }
        return FetchedTree(nodes: nodes, root: root, truncated: truncated, deadlineReached: deadlineReached,
                           method: "walk", visibleMeansShowing: app.toolkit == "GTK")
    }
}
