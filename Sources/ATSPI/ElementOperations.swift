import CAtspiConstants
import DBus

/// What `element.activate` did.
public struct ActivateResult: Sendable, Hashable {
    /// The app's answer to `DoAction`.
    public var performed: Bool
    /// The action's name as the toolkit gives it, lower case.
    public var action: String
    /// The element's states afterwards.
    public var states: [String]
}

/// What `element.focus` did.
public struct FocusResult: Sendable, Hashable {
    /// The app's answer to `GrabFocus`.
    public var accepted: Bool
    public var states: [String]
}

/// What `text.set` and `field.fill` did. For password fields `matches` compares the length only.
public struct SetTextResult: Sendable, Hashable {
    public var accepted: Bool
    public var matches: Bool
    /// Characters the field holds now (-1 when it did not say).
    public var length: Int
}

/// What `value.set` did.
public struct SetValueResult: Sendable, Hashable {
    public var accepted: Bool
    public var value: Double
}

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
    public var name: String { node.name }
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
    private func confirmedElement(_ target: ResolvedTarget) async throws(AccessibilityError) -> (AppHandle, ElementTarget, AccessibleNode) {
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

    private func readTextContent(_ app: AppHandle, path: String) async throws(AccessibilityError) -> String {
        let count = try await calls.property(app, path, Atspi.text, "CharacterCount").integerValue ?? 0
        guard count > 0 else { return "" }
        // GTK4 returns "" for GetText(0, -1): always pass the character count.
        let reply = try await calls.call(app, path, Atspi.text, "GetText", [.int32(0), .int32(Int32(min(count, 1 << 24)))],
                                   timeout: config.readTimeout)
        return reply.first?.stringValue ?? ""
    }

    private func currentStates(_ app: AppHandle, path: String) async throws(AccessibilityError) -> [String] {
        let reply = try await calls.call(app, path, Atspi.accessible, "GetState", timeout: config.readTimeout)
        let words = (reply.first?.arrayValue ?? []).compactMap { $0.integerValue.map { UInt32(truncatingIfNeeded: $0) } }
        return StateSet(words: words).names
    }

    /// `element.activate`: performs the named action (default: the first) and returns the
    /// element's states afterwards.
    public func activate(_ target: ResolvedTarget, action: String? = nil) async throws(AccessibilityError) -> ActivateResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.action) else { throw .notSupported("element has no actions") }
        let list = try await calls.call(app, element.path, Atspi.action, "GetActions", timeout: config.readTimeout)
        // Lower case: toolkits differ ("Click" in GTK3, "click" in GTK4, "Press" in Qt).
        let names = (list.first?.arrayValue ?? []).compactMap { $0.structFields?.first?.stringValue?.lowercased() }
        guard !names.isEmpty else { throw .notSupported("element has no actions") }
        var index = 0
        if let action {
            guard let found = names.firstIndex(where: { $0 == action.lowercased() }) else {
                throw .notSupported("element has no action \(Text.quoted(action))", actions: names)
            }
            index = found
        }
        let reply = try await calls.call(app, element.path, Atspi.action, "DoAction", [.int32(Int32(index))],
                                   timeout: config.actionTimeout)
        let states = try await currentStates(app, path: element.path)
        return ActivateResult(performed: reply.first?.boolValue ?? false, action: names[index], states: states)
    }

    /// `element.focus`: `Component.GrabFocus`, then the element's states.
    public func focus(_ target: ResolvedTarget) async throws(AccessibilityError) -> FocusResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.component) else { throw .notSupported("element cannot take focus") }
        let reply = try await calls.call(app, element.path, Atspi.component, "GrabFocus", timeout: config.actionTimeout)
        let accepted = reply.first?.boolValue ?? false
        // Toolkits set FOCUSED when the window system confirms the focus change, a moment later.
        var states = try await currentStates(app, path: element.path)
        for _ in 0..<10 where !states.contains("focused") && accepted {
            do { try await config.sleep(.milliseconds(20)) } catch { throw .cancelled }
            states = try await currentStates(app, path: element.path)
        }
        return FocusResult(accepted: accepted, states: states)
    }

    /// `text.set` and `field.fill`: replaces the text, then reads it back. For password fields
    /// only the length is compared; their content is never read.
    public func setText(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.editableText) else { throw .notSupported("element is not editable text") }
        if value.utf8.contains(0) { throw .invalidArgument(field: "value", "contains a NUL character") }
        let reply = try await calls.call(app, element.path, Atspi.editableText, "SetTextContents", [.string(value)],
                                   timeout: config.actionTimeout)
        let count = try await calls.property(app, element.path, Atspi.text, "CharacterCount").integerValue ?? -1
        let matches: Bool
        if node.isPassword {
            matches = count == Int64(value.unicodeScalars.count)
        } else {
            matches = try await readTextContent(app, path: element.path) == value
        }
        return SetTextResult(accepted: reply.first?.boolValue ?? false, matches: matches, length: Int(count))
    }

    /// `value.set`: sets `Value.CurrentValue` if it lies within the element's minimum and maximum.
    public func setValue(_ target: ResolvedTarget, value: Double) async throws(AccessibilityError) -> SetValueResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.value), !node.isPassword else { throw .notSupported("element has no value") }
        guard value.isFinite else { throw .invalidValue("value must be a finite number") }
        let minimum = try await calls.property(app, element.path, Atspi.value, "MinimumValue").doubleValue ?? -.infinity
        let maximum = try await calls.property(app, element.path, Atspi.value, "MaximumValue").doubleValue ?? .infinity
        guard value >= minimum, value <= maximum else {
            throw .invalidValue("value \(value) is outside \(minimum)...\(maximum)", minimum: minimum, maximum: maximum)
        }
        _ = try await calls.call(app, element.path, Atspi.properties, "Set",
                           [.string(Atspi.value), .string("CurrentValue"), .variant(.double(value))],
                           timeout: config.actionTimeout)
        let now = try await calls.property(app, element.path, Atspi.value, "CurrentValue").doubleValue ?? .nan
        return SetValueResult(accepted: now == value, value: now)
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
        for (index, item) in all.enumerated() {
            let node = item.node
            if let roleNumber, node.role != roleNumber { continue }
            if let name, node.name != name { continue }
            if let needle, !node.name.lowercased().contains(needle) { continue }
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
        let nodes = matches.map { index in
            ElementNode(ref: refOf[index]!, parent: all[index].parentIndex.flatMap { refOf[$0] }, depth: all[index].depth,
                        node: all[index].node, extras: NodeExtras(), showsActions: false)
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
        for node in try await readNodes(app, paths: paths, withChildren: false) {
            if node.role != role || node.states.bits & stateBits != stateBits { continue }
            if let name, node.name != name { continue }
            if let needle, !node.name.lowercased().contains(needle) { continue }
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
        let nodes = zip(matches, matchRefs).map { node, ref in
            ElementNode(ref: ref, parent: parentOf[node.path].flatMap { parentRefs[$0] }, depth: depth(node.path),
                        node: node, extras: NodeExtras(), showsActions: false)
        }
        return FoundElements(app: app.id, nodes: nodes, truncated: truncated, method: "collection")
    }
}
