import CAtspiConstants
import DBus

/// Elements found by `elements.find`, in depth-first order.
public struct FoundElements: Sendable {
    public var app: String
    public var nodes: [ElementNode]
    public var truncated: Bool
    /// `collection` (the app matched), `cache` or `walk`.
    public var method: String
}

/// One element of a result (`element.get`, `elements.find`), in the shape snapshot nodes have.
public struct ElementNode: Sendable {
    public var ref: String
    public var parent: String?
    public var depth: Int
    /// The app's id, for `element.get`.
    public var app: String?
    let node: AccessibleNode
    var extras: NodeExtras
    /// Whether the node carries its `actions`.
    let showsActions: Bool

    public var role: String { AtspiNames.role(node.role) }
    /// What a person calls it: its accessible name, or for an unnamed field its label.
    public var name: String { extras.label ?? node.name }
    /// The accessible name as the app gives it.
    public var rawName: String { node.name }
    public var states: [String] { node.states.names }
    public var text: String? { node.isPassword ? nil : extras.text }
    /// Content (text, value) this result leaves out because the caller may not read it.
    public var contentWithheld: Bool { extras.contentWithheld }
}

extension AccessibilityService {
    /// The table entry of a ref.
    func target(ref: String) throws(AccessibilityError) -> RefTable.Entry {
        guard let entry = refs.lookup(ref) else {
            throw .elementGone("unknown element ref \(Text.quoted(String(ref.prefix(64))))")
        }
        return entry
    }

    /// The app of a table entry; its refs are forgotten when it has left the bus.
    func appHandle(for entry: RefTable.Entry) async throws(AccessibilityError) -> AppHandle {
        do throws(AccessibilityError) {
            return try await registry.live(entry.app)
        } catch .appGone(let app) {
            refs.removeApp(entry.app)
            throw .appGone(app: app)
        }
    }

    /// Relation targets of an object by relation name ("labelled-by", "label-for", ...).
    func relations(_ app: AppHandle, path: String) async throws(AccessibilityError) -> [String: [String]] {
        let reply = try await calls.call(app, path, Atspi.accessible, "GetRelationSet", timeout: config.readTimeout)
        var result: [String: [String]] = [:]
        for relation in reply.first?.arrayValue ?? [] {
            guard let fields = relation.structFields, fields.count == 2, let type = fields[0].integerValue,
                  let name = AtspiTables.relationNames[UInt32(truncatingIfNeeded: type)] else { continue }
            result[name, default: []].append(contentsOf: (fields[1].arrayValue ?? []).compactMap { $0.objectReference?.path })
        }
        return result
    }

    /// Names of the labels an object is labelled by.
    func labelNames(_ app: AppHandle, path: String) async throws(AccessibilityError) -> [String] {
        let labels = try await relations(app, path: path)["labelled-by"] ?? []
        guard !labels.isEmpty else { return [] }
        return try await readNodes(app, paths: labels, withChildren: false, interfaces: false).map(\.name)
    }

    /// The element, confirmed unchanged, or a thrown ``AccessibilityError/changed(_:)``.
    func confirmedElement(_ target: ResolvedTarget) async throws(AccessibilityError) -> (AppHandle, ElementTarget, AccessibleNode) {
        guard let element = target.element else { throw .unexpected("the request names no element") }
        let (app, node) = try await confirm(target)
        guard let node else { throw .elementGone("element \(element.ref) no longer exists") }
        return (app, element, node)
    }

    /// `element.get`: one element with bounds, actions, relations, parent and depth; its text and
    /// value only with `content` (never for password fields).
    public func details(_ target: ResolvedTarget, content: Bool) async throws(AccessibilityError) -> ElementNode {
        let (app, element, node) = try await confirmedElement(target)
        let deadline = Deadline(after: config.requestDeadline)
        var include: SnapshotIncludes = [.bounds, .actions]
        if content { include.formUnion([.text, .value]) }
        var extras = try await readExtras(app, [node], include: include, deadline: deadline)[0]
        extras.contentWithheld = !content && Self.hasContent(node)
        if node.name.isEmpty, let label = target.element?.label, !label.isEmpty { extras.label = label }
        let related = try await relations(app, path: element.path)
        let relatedPaths = Array(Set(related.values.joined()))
        let relatedNodes = try await readNodes(app, paths: relatedPaths, withChildren: false)
        let relatedRefs = Dictionary(uniqueKeysWithValues: zip(relatedNodes.map(\.path),
            refs.refs(app: app.id, elements: relatedNodes.map { ($0.path, $0.role, $0.name) })))
        extras.relations = related.mapValues { $0.compactMap { relatedRefs[$0] } }
        // Parent and depth: follow Parent up to the app root.
        var parentRef: String?
        var depth = 0
        var current = element.path
        while current != app.rootPath, depth < 256 {
            let value = try await calls.property(app, current, Atspi.accessible, "Parent")
            guard let parent = value.objectReference?.path, parent != "/org/a11y/atspi/null", parent != current else { break }
            if depth == 0, let parentNode = try await readNodes(app, paths: [parent], withChildren: false).first {
                parentRef = refs.ref(app: app.id, path: parent, role: parentNode.role, name: parentNode.name)
            }
            depth += 1
            current = parent
        }
        let ref = refs.ref(app: app.id, path: element.path, role: node.role, name: node.name)
        return ElementNode(ref: ref, parent: parentRef, depth: depth, app: app.id, node: node, extras: extras,
                           showsActions: true)
    }

    /// Whether an element has content a snapshot or `element.get` would carry: text (not of a
    /// password field) or a value.
    static func hasContent(_ node: AccessibleNode) -> Bool {
        !node.isPassword && (node.interfaces.contains(.text) || node.interfaces.contains(.value))
    }

    /// `text.read`: the element's text. Password fields are never read.
    public func readText(_ target: ResolvedTarget) async throws(AccessibilityError) -> String {
        let (app, element, node) = try await confirmedElement(target)
        if node.isPassword { throw .passwordNeverRead }
        guard node.interfaces.contains(.text) else { throw .notSupported("element has no text") }
        return try await readTextContent(app, path: element.path)
    }

    func readTextContent(_ app: AppHandle, path: String) async throws(AccessibilityError) -> String {
        let count = try await calls.property(app, path, Atspi.text, "CharacterCount").integerValue ?? 0
        guard count > 0 else { return "" }
        // GTK4 returns "" for GetText(0, -1): always pass the character count.
        let reply = try await calls.call(app, path, Atspi.text, "GetText", [.int32(0), .int32(Int32(min(count, 1 << 24)))],
                                   timeout: config.readTimeout)
        return reply.first?.stringValue ?? ""
    }

    /// `elements.find`: nodes matching role, exact name, name substring (ignoring case) and
    /// states, in depth-first order.
    public func find(_ target: ResolvedTarget, role: String? = nil, name: String? = nil, nameContains: String? = nil,
                     states: [String] = [], limit: Int = 100) async throws(AccessibilityError) -> FoundElements
    {
        let handle = try await registry.live(target.app.id)
        var roleNumber: UInt32?
        if let role {
            guard let number = AtspiNames.roleNumbers[AtspiNames.normalizedRole(role)] else {
                throw .invalidArgument(field: "role", "unknown role \(Text.quoted(role))")
            }
            roleNumber = number
        }
        var stateBits: UInt64 = 0
        for state in states {
            guard let bit = AtspiNames.stateBits[AtspiNames.normalizedState(state)] else {
                throw .invalidArgument(field: "states", "unknown state \(Text.quoted(state))")
            }
            stateBits |= 1 << UInt64(bit)
        }
        let deadline = Deadline(after: config.requestDeadline)
        let needle = nameContains?.lowercased()
        if let roleNumber, handle.hasFullCache,
           let found = try await findWithCollection(handle, role: roleNumber, name: name, needle: needle,
                                                    stateBits: stateBits, limit: limit, deadline: deadline)
        {
            return found
        }
        let tree = try await fetchTree(handle, root: handle.rootPath, maxDepth: nil, maxNodes: 100_000,
                                       pruneHidden: false, deadline: deadline)
        let all = TreeOrder.depthFirst(tree, maxDepth: nil, showingOnly: false)
        var matches: [Int] = []
        var truncated = false
        // Unnamed fields match by their label, as results name them.
        var labelOf: [Int: String] = [:]
        if name != nil || needle != nil {
            let unnamed = all.indices.filter { index in
                let node = all[index].node
                return (roleNumber == nil || node.role == roleNumber) && node.states.bits & stateBits == stateBits
                    && node.name.isEmpty && Self.labelledRoles.contains(node.role)
            }
            let labels = try await labelsOfUnnamed(handle, unnamed.map { all[$0].node }, known: tree, deadline: deadline)
            for (index, label) in zip(unnamed, labels) { labelOf[index] = label }
        }
        for (index, item) in all.enumerated() {
            let node = item.node
            if let roleNumber, node.role != roleNumber { continue }
            let shownName = labelOf[index] ?? node.name
            if let name, shownName != name { continue }
            if let needle, !shownName.lowercased().contains(needle) { continue }
            if node.states.bits & stateBits != stateBits { continue }
            if matches.count >= limit {
                truncated = true
                break
            }
            matches.append(index)
        }
        let parents = matches.compactMap { all[$0].parentIndex }
        let wanted = matches + parents
        let refList = refs.refs(app: handle.id, elements: wanted.map { (all[$0].node.path, all[$0].node.role, all[$0].node.name) })
        var refOf: [Int: String] = [:]
        for (i, index) in wanted.enumerated() { refOf[index] = refList[i] }
        let labels = try await labelsOfUnnamed(handle, matches.map { all[$0].node }, known: tree, deadline: deadline)
        let nodes = zip(matches, labels).map { index, label in
            ElementNode(ref: refOf[index]!, parent: all[index].parentIndex.flatMap { refOf[$0] }, depth: all[index].depth,
                        node: all[index].node, extras: NodeExtras(label: label), showsActions: false)
        }
        return FoundElements(app: handle.id, nodes: nodes, truncated: truncated || tree.truncated, method: tree.method)
    }

    /// `elements.find` on the app side with `Collection.GetMatches` (atk-bridge only): the app
    /// matches role and states; names are checked here; parents and depths come from `Parent`.
    /// Nil when the app has no Collection.
    private func findWithCollection(_ app: AppHandle, role: UInt32, name: String?, needle: String?, stateBits: UInt64,
                                    limit: Int, deadline: Deadline) async throws(AccessibilityError) -> FoundElements?
    {
        var roleWords = [Int32](repeating: 0, count: 4)
        roleWords[Int(role / 32)] |= Int32(bitPattern: UInt32(1) << (role % 32))
        let stateWords = [Int32(bitPattern: UInt32(truncatingIfNeeded: stateBits)),
                          Int32(bitPattern: UInt32(truncatingIfNeeded: stateBits >> 32))]
        let matchAll: Int32 = 1
        let matchAny: Int32 = 2  // atk-bridge compares ATK role numbers in MATCH_ALL: use ANY for roles
        let rule = DBusValue.structure([
            .array(elementSignature: "i", stateWords.map { .int32($0) }), .int32(matchAll),
            .stringDictionary([]), .int32(matchAll),
            .array(elementSignature: "i", roleWords.map { .int32($0) }), .int32(matchAny),
            .strings([]), .int32(matchAll), .bool(false),
        ])
        let filtersNames = name != nil || needle != nil
        let count = filtersNames ? 0 : Int32(min(limit + 1, Int(Int32.max)))
        let reply: [DBusValue]
        do throws(AccessibilityError) {
            reply = try await calls.call(app, app.rootPath, Atspi.collection, "GetMatches",
                                   [rule, .uint32(1), .int32(count), .bool(true)],
                                   timeout: deadline.remaining(cap: config.bulkCallTimeout))
        } catch .notSupported {
            return nil
        }
        let paths = Self.paths(fromChildren: reply.first)
        var matches: [AccessibleNode] = []
        var truncated = false
        let read = try await readNodes(app, paths: paths, withChildren: false).filter {
            $0.role == role && $0.states.bits & stateBits == stateBits
        }
        // Unnamed fields match by their label, as results name them.
        let readLabels = filtersNames ? try await labelsOfUnnamed(app, read, known: nil, deadline: deadline)
            : [String?](repeating: nil, count: read.count)
        for (node, label) in zip(read, readLabels) {
            let shownName = label ?? node.name
            if let name, shownName != name { continue }
            if let needle, !shownName.lowercased().contains(needle) { continue }
            if matches.count >= limit {
                truncated = true
                break
            }
            matches.append(node)
        }
        // Parents, level by level up to the app root, all calls of a level at once.
        var parentOf: [String: String] = [:]
        var frontier = Array(Set(matches.map(\.path)))
        var rounds = 0
        while !frontier.isEmpty, rounds < 256 {
            rounds += 1
            let replies = try await calls.batch(app, frontier.map { ($0, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Parent")]) },
                                          timeout: deadline.remaining(cap: config.readTimeout))
            var next: [String] = []
            for (path, result) in zip(frontier, replies) {
                guard let parent = (try? result.get())?.first?.unwrapped.objectReference?.path,
                      parent != "/org/a11y/atspi/null", parent != path else { continue }
                parentOf[path] = parent
                if path != app.rootPath, parent != app.rootPath, parentOf[parent] == nil, !next.contains(parent) {
                    next.append(parent)
                }
            }
            frontier = next.filter { parentOf[$0] == nil }
        }
        func depth(_ path: String) -> Int {
            var depth = 0
            var current = path
            while current != app.rootPath, let parent = parentOf[current], depth < 256 {
                depth += 1
                current = parent
            }
            return depth
        }
        let parentPaths = Array(Set(matches.compactMap { parentOf[$0.path] }))
        let parentNodes = try await readNodes(app, paths: parentPaths, withChildren: false)
        let parentRefs = Dictionary(uniqueKeysWithValues: zip(parentNodes.map(\.path),
            refs.refs(app: app.id, elements: parentNodes.map { ($0.path, $0.role, $0.name) })))
        let matchRefs = refs.refs(app: app.id, elements: matches.map { ($0.path, $0.role, $0.name) })
        let labels = try await labelsOfUnnamed(app, matches, known: nil, deadline: deadline)
        let nodes = zip(zip(matches, matchRefs), labels).map { pair, label in
            ElementNode(ref: pair.1, parent: parentOf[pair.0.path].flatMap { parentRefs[$0] }, depth: depth(pair.0.path),
                        node: pair.0, extras: NodeExtras(label: label), showsActions: false)
        }
        return FoundElements(app: app.id, nodes: nodes, truncated: truncated, method: "collection")
    }
}
