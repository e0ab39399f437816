import CAtspiConstants
import DBus

/// Reading objects of an app: their properties and children, many at once.
extension AccessibilityService {
    /// The child paths of an object.
    func childPaths(_ app: AppHandle, of path: String) async throws(AccessibilityError) -> [String] {
        let reply = try await calls.call(app, path, Atspi.accessible, "GetChildren", timeout: config.readTimeout)
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
        var pending: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        pending.reserveCapacity(paths.count * perNode)
        for path in paths {
            pending.append((path, Atspi.accessible, "GetRole", []))
            pending.append((path, Atspi.accessible, "GetState", []))
            pending.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Name")]))
            pending.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Description")]))
            if readInterfaces { pending.append((path, Atspi.accessible, "GetInterfaces", [])) }
            if withChildren { pending.append((path, Atspi.properties, "Get", [.string(Atspi.accessible), .string("ChildCount")])) }
        }
        let results = try await calls.batch(app, pending, timeout: timeout ?? config.readTimeout, deadline: deadline)
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
        let remaining = timeout ?? config.readTimeout
        let lists = try await calls.batch(app, full.map { (nodes[$0].path, Atspi.accessible, "GetChildren", []) },
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
        let results = try await calls.batch(app, missing.map { (nodes[$0].path, Atspi.accessible, "GetInterfaces", []) },
                                      timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
        var completed = nodes
        for (offset, index) in missing.enumerated() {
            completed[index].interfaces = Self.interfaces(from: results[offset])
            completed[index].interfacesRead = true
        }
        return completed
    }

    /// `GetChildren` of many objects at once; objects that vanished have nil children.
    func readChildren(_ app: AppHandle, paths: [String], timeout: Duration, deadline: Deadline?)
        async throws(AccessibilityError) -> [(path: String, children: [String]?)]
    {
        let results = try await calls.batch(app, paths.map { ($0, Atspi.accessible, "GetChildren", []) },
                                      timeout: timeout, deadline: deadline)
        return zip(paths, results).map { path, result in
            (path, (try? result.get()).map { Self.paths(fromChildren: $0.first) })
        }
    }
}
