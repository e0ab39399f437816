public import JSONRPC
import CAtspiConstants
import DBus

extension AccessibilityService {
    /// The table entry of a ref, or -32003.
    func target(ref: String) throws(RPCError) -> RefTable.Entry {
        guard let entry = refs.lookup(ref) else {
            throw RPCError(.elementNotFound, "unknown element ref \(JSONWriter.escapedForMessage(String(ref.prefix(64))))")
        }
        return entry
    }

    /// The app of a table entry: -32002 if it has left the registry.
    func appHandle(for entry: RefTable.Entry) async throws(RPCError) -> AppHandle {
        let children = try await registryChildren()
        guard let child = children.first(where: { $0.name == entry.app }) else {
            refs.removeApp(entry.app)
            throw RPCError(.appNotFound, "app \(entry.app) has gone")
        }
        return try await handle(busName: child.name, rootPath: child.path)
    }

    /// Re-reads the element behind a ref and checks it is still the element that was shown:
    /// present, not defunct, same role. -32003 otherwise.
    func revalidate(ref: String) async throws(RPCError) -> (AppHandle, RefTable.Entry, AccessibleNode) {
        let entry = try target(ref: ref)
        let app = try await appHandle(for: entry)
        guard let node = try await readNodes(app, paths: [entry.path], withChildren: false).first else {
            throw RPCError(.elementNotFound, "element \(ref) no longer exists")
        }
        if node.states.isDefunct { throw RPCError(.elementNotFound, "element \(ref) is defunct") }
        if node.role != entry.role {
            throw RPCError(.elementNotFound, "element \(ref) changed: it was a \(AtspiNames.role(entry.role)), now a \(AtspiNames.role(node.role))")
        }
        return (app, entry, node)
    }

    /// What the broker needs before deciding on an element: app identity, role, name, label.
    public func elementTarget(ref: String) async throws -> ElementTarget {
        let entry = try target(ref: ref)
        let app = try await appHandle(for: entry)
        var label: String?
        let roleName = AtspiNames.role(entry.role)
        if ["text", "entry", "password text", "spin button", "combo box", "slider", "check box", "radio button"].contains(roleName) {
            label = try? await labelNames(app, path: entry.path).first
        }
        return ElementTarget(appID: app.busName, appName: app.name, exe: app.exe, pid: app.pid, role: roleName,
                             name: entry.name, label: label)
    }

    /// Relation targets of an object by relation name ("labelled-by", "label-for", ...).
    func relations(_ app: AppHandle, path: String) async throws(RPCError) -> [String: [String]] {
        let reply = try await call(app, path, Atspi.accessible, "GetRelationSet", timeout: config.smallCallTimeout)
        var result: [String: [String]] = [:]
        for relation in reply.first?.arrayValue ?? [] {
            guard let fields = relation.structFields, fields.count == 2, let type = fields[0].integerValue,
                  let name = AtspiTables.relationNames[UInt32(truncatingIfNeeded: type)] else { continue }
            result[name, default: []].append(contentsOf: (fields[1].arrayValue ?? []).compactMap { $0.objectReference?.path })
        }
        return result
    }

    /// Names of the labels an object is labelled by.
    func labelNames(_ app: AppHandle, path: String) async throws(RPCError) -> [String] {
        let labels = try await relations(app, path: path)["labelled-by"] ?? []
        guard !labels.isEmpty else { return [] }
        return try await readNodes(app, paths: labels, withChildren: false).map(\.name)
    }

    /// `element.get`: one element with bounds, actions, text (never for passwords), value,
    /// parent, depth and relations.
    public func get(ref: String) async throws -> JSONValue {
        let (app, entry, node) = try await revalidate(ref: ref)
        let deadline = Deadline(after: config.requestDeadline)
        var extras = try await readExtras(app, [node], include: [.bounds, .actions, .text, .value], deadline: deadline)[0]
        let related = try await relations(app, path: entry.path)
        let relatedPaths = Array(Set(related.values.joined()))
        let relatedNodes = try await readNodes(app, paths: relatedPaths, withChildren: false)
        let relatedRefs = Dictionary(uniqueKeysWithValues: zip(relatedNodes.map(\.path),
            refs.refs(app: app.busName, elements: relatedNodes.map { ($0.path, $0.role, $0.name) })))
        extras.relations = related.mapValues { $0.compactMap { relatedRefs[$0] } }
        // Parent and depth: follow Parent up to the app root.
        var parentRef: String?
        var depth = 0
        var current = entry.path
        while current != app.rootPath, depth < 256 {
            let value = try await property(app, current, Atspi.accessible, "Parent")
            guard let parent = value.objectReference?.path, parent != "/org/a11y/atspi/null", parent != current else { break }
            if depth == 0, let parentNode = try await readNodes(app, paths: [parent], withChildren: false).first {
                parentRef = refs.ref(app: app.busName, path: parent, role: parentNode.role, name: parentNode.name)
            }
            depth += 1
            current = parent
        }
        let myRef = refs.ref(app: app.busName, path: entry.path, role: node.role, name: node.name)
        var json = Self.nodeJSON(node, ref: myRef, parent: parentRef, depth: depth, extras: extras, actions: true)
        if case .object(var object) = json {
            object.append("app", .string(app.busName))
            json = .object(object)
        }
        return json
    }

    /// `text.read`: the element's text. Password fields are refused (-32001, hard_deny) and
    /// never read.
    public func readText(ref: String) async throws -> JSONValue {
        let (app, entry, node) = try await revalidate(ref: ref)
        if node.isPassword { throw Self.passwordDenied }
        guard node.interfaces.contains(.text) else { throw RPCError(.notSupported, "element has no text") }
        let text = try await readTextContent(app, path: entry.path)
        return ["text": .string(text)]
    }

    static let passwordDenied = RPCError(.denied, "password fields are never read",
                                         data: ["reason": "hard_deny", "class": "read"])

    private func readTextContent(_ app: AppHandle, path: String) async throws(RPCError) -> String {
        let count = try await property(app, path, Atspi.text, "CharacterCount").integerValue ?? 0
        guard count > 0 else { return "" }
        // GTK4 returns "" for GetText(0, -1): always pass the character count.
        let reply = try await call(app, path, Atspi.text, "GetText", [.int32(0), .int32(Int32(min(count, 1 << 24)))],
                                   timeout: config.smallCallTimeout)
        return reply.first?.stringValue ?? ""
    }

    private func currentStates(_ app: AppHandle, path: String) async throws(RPCError) -> JSONValue {
        let reply = try await call(app, path, Atspi.accessible, "GetState", timeout: config.smallCallTimeout)
        let words = (reply.first?.arrayValue ?? []).compactMap { $0.integerValue.map { UInt32(truncatingIfNeeded: $0) } }
        return .array(StateSet(words: words).names.map(JSONValue.string))
    }

    /// `element.activate`: performs the named action (default: the first) and returns the
    /// element's states afterwards.
    public func activate(ref: String, action: String? = nil) async throws -> JSONValue {
        let (app, entry, node) = try await revalidate(ref: ref)
        guard node.interfaces.contains(.action) else { throw RPCError(.notSupported, "element has no actions") }
        let list = try await call(app, entry.path, Atspi.action, "GetActions", timeout: config.smallCallTimeout)
        // Lower case: toolkits differ ("Click" in GTK3, "click" in GTK4, "Press" in Qt).
        let names = (list.first?.arrayValue ?? []).compactMap { $0.structFields?.first?.stringValue?.lowercased() }
        guard !names.isEmpty else { throw RPCError(.notSupported, "element has no actions") }
        var index = 0
        if let action {
            guard let found = names.firstIndex(where: { $0.caseInsensitiveCompare(action) }) else {
                throw RPCError(.notSupported, "element has no action \(JSONWriter.escapedForMessage(action))",
                               data: ["actions": .array(names.map(JSONValue.string))])
            }
            index = found
        }
        let reply = try await call(app, entry.path, Atspi.action, "DoAction", [.int32(Int32(index))],
                                   timeout: config.actionTimeout)
        let states = try await currentStates(app, path: entry.path)
        return ["ok": .bool(reply.first?.boolValue ?? false), "action": .string(names[index]), "states": states]
    }

    /// `element.focus`: `Component.GrabFocus`, then the element's states.
    public func focus(ref: String) async throws -> JSONValue {
        let (app, entry, node) = try await revalidate(ref: ref)
        guard node.interfaces.contains(.component) else { throw RPCError(.notSupported, "element cannot take focus") }
        let reply = try await call(app, entry.path, Atspi.component, "GrabFocus", timeout: config.actionTimeout)
        // Toolkits set FOCUSED when the window system confirms the focus change, a moment later.
        var states = try await currentStates(app, path: entry.path)
        for _ in 0..<10 where !(states.arrayValue ?? []).contains("focused") && reply.first?.boolValue == true {
            try await config.sleep(.milliseconds(20))
            states = try await currentStates(app, path: entry.path)
        }
        return ["ok": .bool(reply.first?.boolValue ?? false), "states": states]
    }

    /// `text.set`: replaces the text, then reads it back. For password fields only the length
    /// is compared; their content is never read.
    public func setText(ref: String, value: String) async throws -> JSONValue {
        let (app, entry, node) = try await revalidate(ref: ref)
        return try await setText(app, path: entry.path, node: node, value: value)
    }

    func setText(_ app: AppHandle, path: String, node: AccessibleNode, value: String) async throws(RPCError) -> JSONValue {
        guard node.interfaces.contains(.editableText) else { throw RPCError(.notSupported, "element is not editable text") }
        if value.utf8.contains(0) { throw RPCError.invalidParams(field: "value", "contains a NUL character") }
        let reply = try await call(app, path, Atspi.editableText, "SetTextContents", [.string(value)],
                                   timeout: config.actionTimeout)
        let count = try await property(app, path, Atspi.text, "CharacterCount").integerValue ?? -1
        let matches: Bool
        if node.isPassword {
            matches = count == Int64(value.unicodeScalars.count)
        } else {
            matches = try await readTextContent(app, path: path) == value
        }
        return ["ok": .bool(reply.first?.boolValue ?? false), "matches": .bool(matches), "length": .int(count)]
    }

    /// `value.set`: sets `Value.CurrentValue` if it lies within the element's minimum and maximum.
    public func setValue(ref: String, value: Double) async throws -> JSONValue {
        let (app, entry, node) = try await revalidate(ref: ref)
        guard node.interfaces.contains(.value), !node.isPassword else { throw RPCError(.notSupported, "element has no value") }
        guard value.isFinite else { throw RPCError(.invalidValue, "value must be a finite number") }
        let minimum = try await property(app, entry.path, Atspi.value, "MinimumValue").doubleValue ?? -.infinity
        let maximum = try await property(app, entry.path, Atspi.value, "MaximumValue").doubleValue ?? .infinity
        guard value >= minimum, value <= maximum else {
            throw RPCError(.invalidValue, "value \(value) is outside \(minimum)...\(maximum)",
                           data: ["minimum": .double(minimum), "maximum": .double(maximum)])
        }
        _ = try await call(app, entry.path, Atspi.properties, "Set",
                           [.string(Atspi.value), .string("CurrentValue"), .variant(.double(value))],
                           timeout: config.actionTimeout)
        let now = try await property(app, entry.path, Atspi.value, "CurrentValue").doubleValue ?? .nan
        return ["ok": .bool(now == value), "value": .double(now)]
    }

    /// `field.fill`: finds the editable field whose name or labelled-by label is `field`
    /// (exact first, then ignoring case) and sets its text.
    public func fillField(app: String, field: String, value: String) async throws -> JSONValue {
        let handle = try await resolveHandle(app)
        let deadline = Deadline(after: config.requestDeadline)
        let tree = try await fetchTree(handle, root: handle.rootPath, maxDepth: nil, maxNodes: 100_000,
                                       pruneHidden: false, deadline: deadline)
        let editable = try await withInterfaces(handle, Self.depthFirst(tree, maxDepth: nil, showingOnly: false)
            .map(\.node).filter(\.states.isEditable), deadline: deadline)
            .filter { $0.interfaces.contains(.editableText) }
        // Labels of the candidates, one batch.
        let relationReplies = try await batch(handle, editable.map { ($0.path, Atspi.accessible, "GetRelationSet", []) },
                                              timeout: deadline.remaining(cap: config.smallCallTimeout))
        var labelPaths: [[String]] = []
        var missing = Set<String>()
        for reply in relationReplies {
            var paths: [String] = []
            for relation in (try? reply.get())?.first?.arrayValue ?? [] {
                guard let fields = relation.structFields, fields.count == 2,
                      fields[0].integerValue == Int64(AtspiNames.labelledBy) else { continue }
                paths += (fields[1].arrayValue ?? []).compactMap { $0.objectReference?.path }
            }
            for path in paths where tree.slot(of: path) == nil { missing.insert(path) }
            labelPaths.append(paths)
        }
        var labelNodes = tree
        labelNodes.add(try await readNodes(handle, paths: Array(missing), withChildren: false))
        let labels = labelPaths.map { $0.compactMap { labelNodes[$0]?.name } }

        func matching(_ equal: (String) -> Bool) -> [Int] {
            editable.indices.filter { equal(editable[$0].name) || labels[$0].contains(where: equal) }
        }
        var found = matching { $0 == field }
        if found.isEmpty { found = matching { $0.caseInsensitiveCompare(field) } }
        guard !found.isEmpty else {
            throw RPCError(.elementNotFound, "no editable field named or labelled \(JSONWriter.escapedForMessage(field))")
        }
        let foundRefs = refs.refs(app: handle.busName, elements: found.map { (editable[$0].path, editable[$0].role, editable[$0].name) })
        if found.count > 1 {
            let candidates: [JSONValue] = zip(found, foundRefs).map { index, ref in
                ["ref": .string(ref), "role": .string(AtspiNames.role(editable[index].role)),
                 "name": .string(editable[index].name), "label": labels[index].first.map(JSONValue.string) ?? .null]
            }
            throw RPCError(.ambiguous, "\(found.count) fields match \(JSONWriter.escapedForMessage(field))",
                           data: ["candidates": .array(candidates)])
        }
        let node = editable[found[0]]
        guard case .object(var result) = try await setText(handle, path: node.path, node: node, value: value) else {
            throw RPCError(.internalError, "unexpected result")
        }
        result["ref"] = .string(foundRefs[0])
        return .object(result)
    }

    /// `elements.find`: nodes matching role, exact name, name substring (ignoring case) and
    /// states, in depth-first order.
    public func find(app: String, role: String? = nil, name: String? = nil, nameContains: String? = nil,
                     states: [String] = [], limit: Int = 100) async throws -> JSONValue
    {
        let handle = try await resolveHandle(app)
        var roleNumber: UInt32?
        if let role {
            guard let number = AtspiNames.roleNumbers[AtspiNames.normalizedRole(role)] else {
                throw RPCError.invalidParams(field: "role", "unknown role \(JSONWriter.escapedForMessage(role))")
            }
            roleNumber = number
        }
        var stateBits: UInt64 = 0
        for state in states {
            guard let bit = AtspiNames.stateBits[AtspiNames.normalizedState(state)] else {
                throw RPCError.invalidParams(field: "states", "unknown state \(JSONWriter.escapedForMessage(state))")
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
        let all = Self.depthFirst(tree, maxDepth: nil, showingOnly: false)
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
        let refList = refs.refs(app: handle.busName, elements: wanted.map { (all[$0].node.path, all[$0].node.role, all[$0].node.name) })
        var refOf: [Int: String] = [:]
        for (i, index) in wanted.enumerated() { refOf[index] = refList[i] }
        let nodes: [JSONValue] = matches.map { index in
            Self.nodeJSON(all[index].node, ref: refOf[index]!, parent: all[index].parentIndex.flatMap { refOf[$0] },
                          depth: all[index].depth, extras: NodeExtras(), actions: false)
        }
        return ["app": .string(handle.busName), "nodes": .array(nodes), "truncated": .bool(truncated || tree.truncated),
                "method": .string(tree.method)]
    }

    /// `elements.find` on the app side with `Collection.GetMatches` (atk-bridge only): the app
    /// matches role and states; names are checked here; parents and depths come from `Parent`.
    /// Nil when the app has no Collection.
    private func findWithCollection(_ app: AppHandle, role: UInt32, name: String?, needle: String?, stateBits: UInt64,
                                    limit: Int, deadline: Deadline) async throws(RPCError) -> JSONValue?
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
        do {
            reply = try await call(app, app.rootPath, Atspi.collection, "GetMatches",
                                   [rule, .uint32(1), .int32(count), .bool(true)],
                                   timeout: deadline.remaining(cap: config.bulkCallTimeout))
        } catch let error where error.code == .notSupported {
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
            let replies = try await batch(app, frontier.map { ($0, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Parent")]) },
                                          timeout: deadline.remaining(cap: config.smallCallTimeout))
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
            refs.refs(app: app.busName, elements: parentNodes.map { ($0.path, $0.role, $0.name) })))
        let matchRefs = refs.refs(app: app.busName, elements: matches.map { ($0.path, $0.role, $0.name) })
        let nodes: [JSONValue] = zip(matches, matchRefs).map { node, ref in
            Self.nodeJSON(node, ref: ref, parent: parentOf[node.path].flatMap { parentRefs[$0] }, depth: depth(node.path),
                          extras: NodeExtras(), actions: false)
        }
        return ["app": .string(app.busName), "nodes": .array(nodes), "truncated": .bool(truncated),
                "method": "collection"]
    }
}

extension String {
    fileprivate func caseInsensitiveCompare(_ other: String) -> Bool {
        lowercased() == other.lowercased()
    }
}
