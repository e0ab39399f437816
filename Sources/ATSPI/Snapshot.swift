public import JSONRPC
import DBus

/// Which nodes a snapshot keeps.
public enum SnapshotFilter: String, Sendable {
    case all, showing, interactive
}

/// How a snapshot is returned.
public enum SnapshotFormat: String, Sendable {
    case json, outline
}

/// Optional, costlier fields of snapshot nodes.
public struct SnapshotIncludes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let bounds = SnapshotIncludes(rawValue: 1 << 0)
    public static let actions = SnapshotIncludes(rawValue: 1 << 1)
    public static let text = SnapshotIncludes(rawValue: 1 << 2)
    public static let value = SnapshotIncludes(rawValue: 1 << 3)

    /// Parses `["bounds", "actions", "text", "value"]`; unknown names are an invalid-params error.
    public init(names: [String]) throws(RPCError) {
        var set: SnapshotIncludes = []
        for name in names {
            switch name {
            case "bounds": set.insert(.bounds)
            case "actions": set.insert(.actions)
            case "text": set.insert(.text)
            case "value": set.insert(.value)
            default: throw RPCError.invalidParams(field: "include", "unknown field \(JSONWriter.escapedForMessage(name))")
            }
        }
        self = set
    }
}

/// A node chosen for output, with its place in the output tree.
struct EmittedNode {
    var node: AccessibleNode
    var depth: Int
    var parentIndex: Int?
}

/// Extra per-node data read for output.
struct NodeExtras {
    var bounds: (x: Int64, y: Int64, width: Int64, height: Int64)?
    var actions: [String]?
    var text: String?
    var value: (current: Double, minimum: Double, maximum: Double)?
    var relations: [String: [String]]?
}

extension AccessibilityService {
    /// `tree.snapshot`: the app's tree (or the subtree under `root`) as a flat depth-first list
    /// of nodes or as an outline.
    public func snapshot(app: String, root: String? = nil, maxDepth: Int? = nil, maxNodes: Int = 5000,
                         filter: SnapshotFilter = .all, format: SnapshotFormat = .json,
                         include: SnapshotIncludes = []) async throws -> JSONValue
    {
        try await snapshotResult(app: app, root: root, maxDepth: maxDepth, maxNodes: maxNodes, filter: filter,
                                 format: format, include: include).json
    }

    /// ``snapshot(app:root:maxDepth:maxNodes:filter:format:include:)`` before it is written: the
    /// daemon writes it straight into its reply (``SnapshotResult/write(into:)``).
    public func snapshotResult(app: String, root: String? = nil, maxDepth: Int? = nil, maxNodes: Int = 5000,
                               filter: SnapshotFilter = .all, format: SnapshotFormat = .json,
                               include: SnapshotIncludes = []) async throws -> SnapshotResult
    {
        let started = Deadline.now()
        let deadline = Deadline(after: config.requestDeadline)
        let handle = try await resolveHandle(app)
        var rootPath = handle.rootPath
        if let root {
            let entry = try target(ref: root)
            guard entry.app == handle.busName else {
                throw RPCError(.elementNotFound, "ref \(JSONWriter.escapedForMessage(root)) is not an element of this app")
            }
            rootPath = entry.path
        }
        let tree = try await fetchTree(handle, root: rootPath, maxDepth: maxDepth, maxNodes: maxNodes,
                                       pruneHidden: filter == .showing, deadline: deadline)
        let fetchedAt = Deadline.now()
        var emitted = Self.depthFirst(tree, maxDepth: maxDepth, showingOnly: filter == .showing)
        var truncated = tree.truncated
        var extras = [NodeExtras](repeating: NodeExtras(), count: emitted.count)

        var wantActions = include.contains(.actions)
        if filter == .interactive {
            wantActions = true
            extras = try await readExtras(handle, emitted.map(\.node), include: [.actions], deadline: deadline)
            (emitted, extras) = Self.keepInteractive(emitted, extras)
        }
        if emitted.count > maxNodes {
            emitted.removeLast(emitted.count - maxNodes)
            extras.removeLast(extras.count - maxNodes)
            truncated = true
        }
        var more = include
        if filter == .interactive { more.remove(.actions) }
        if format == .outline { more.insert(.text) }
        if !more.isEmpty {
            let read = try await readExtras(handle, emitted.map(\.node), include: more,
                                            textOnlyForFields: format == .outline && !include.contains(.text),
                                            deadline: deadline)
            for index in extras.indices {
                if more.contains(.bounds) { extras[index].bounds = read[index].bounds }
                if more.contains(.actions) { extras[index].actions = read[index].actions }
                if more.contains(.text) { extras[index].text = read[index].text }
                if more.contains(.value) { extras[index].value = read[index].value }
            }
        }
        let refList = refs.refs(app: handle.busName, elements: emitted.map { ($0.node.path, $0.node.role, $0.node.name) })
        let elapsedMs = Double(Deadline.now() - started) / 1_000_000
        var stats: JSONObject = ["nodes": .int(Int64(emitted.count)), "ms": .double((elapsedMs * 100).rounded() / 100),
                                 "method": .string(tree.method),
                                 "fetch_ms": .double((Double(fetchedAt - started) / 10_000).rounded() / 100)]
        if tree.deadlineReached { stats.append("deadline_reached", true) }
        if tree.cacheFilled > 0 { stats.append("cache_filled", .int(Int64(tree.cacheFilled))) }
        if tree.gapsFilled > 0 { stats.append("gaps_filled", .int(Int64(tree.gapsFilled))) }
        if tree.childrenCapped > 0 { stats.append("children_capped", .int(Int64(tree.childrenCapped))) }
        return SnapshotResult(app: handle.busName, nodes: emitted, extras: extras, refs: refList, actions: wantActions,
                              outline: format == .outline ? Self.outline(emitted, extras, refList) : nil,
                              truncated: truncated, stats: stats)
    }

    /// Nodes in depth-first order from the root, honouring max depth and the showing filter.
    static func depthFirst(_ tree: FetchedTree, maxDepth: Int?, showingOnly: Bool) -> [EmittedNode] {
        guard let rootSlot = tree.slot(of: tree.root) else { return [] }
        var output: [EmittedNode] = []
        output.reserveCapacity(tree.nodes.count)
        var visited = [Bool](repeating: false, count: tree.nodes.count)
        var stack: [(slot: Int, depth: Int, parent: Int?)] = [(rootSlot, 0, nil)]
        while let (slot, depth, parent) = stack.popLast() {
            guard !visited[slot] else { continue }
            visited[slot] = true
            let node = tree.nodes[slot]
            if showingOnly, depth > 0, !tree.isShown(node) { continue }
            let index = output.count
            output.append(EmittedNode(node: node, depth: depth, parentIndex: parent))
            if let maxDepth, depth >= maxDepth { continue }
            for child in node.children.reversed() {
                if let childSlot = tree.slot(of: child), !visited[childSlot] { stack.append((childSlot, depth + 1, index)) }
            }
        }
        return output
    }

    /// Keeps nodes that can be acted on (an action, or editable, focusable, selectable) and
    /// their ancestors.
    static func keepInteractive(_ nodes: [EmittedNode], _ extras: [NodeExtras]) -> ([EmittedNode], [NodeExtras]) {
        var keep = [Bool](repeating: false, count: nodes.count)
        for index in nodes.indices.reversed() {
            let node = nodes[index].node
            let interactive = !(extras[index].actions ?? []).isEmpty || node.states.isEditable
                || node.states.isFocusable || node.states.isSelectable
            if interactive || keep[index] {
                keep[index] = true
                if let parent = nodes[index].parentIndex { keep[parent] = true }
            }
        }
        var newIndex = [Int?](repeating: nil, count: nodes.count)
        var keptNodes: [EmittedNode] = []
        var keptExtras: [NodeExtras] = []
        for index in nodes.indices where keep[index] {
            newIndex[index] = keptNodes.count
            var item = nodes[index]
            item.parentIndex = item.parentIndex.flatMap { newIndex[$0] }
            keptNodes.append(item)
            keptExtras.append(extras[index])
        }
        return (keptNodes, keptExtras)
    }

    /// Reads bounds, actions, text and values for nodes, all calls of one kind at once.
    /// Text and values of password fields are never read.
    func readExtras(_ app: AppHandle, _ given: [AccessibleNode], include: SnapshotIncludes,
                    textOnlyForFields: Bool = false, deadline: Deadline) async throws(RPCError) -> [NodeExtras]
    {
        // Which calls apply depends on the interfaces, which walks leave out.
        let nodes = include.isEmpty ? given : try await withInterfaces(app, given, deadline: deadline)
        var extras = [NodeExtras](repeating: NodeExtras(), count: nodes.count)
        var calls: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        var targets: [(index: Int, kind: Int)] = []
        for (index, node) in nodes.enumerated() {
            if include.contains(.bounds), node.interfaces.contains(.component), node.states.isShowing {
                calls.append((node.path, Atspi.component, "GetExtents", [.uint32(0)]))
                targets.append((index, 0))
            }
            if include.contains(.actions), node.interfaces.contains(.action) {
                calls.append((node.path, Atspi.action, "GetActions", []))
                targets.append((index, 1))
            }
            let wantsText = textOnlyForFields ? (node.states.isEditable && node.interfaces.contains(.editableText)) : true
            if include.contains(.text), node.interfaces.contains(.text), !node.isPassword, wantsText {
                calls.append((node.path, Atspi.properties, "Get", [.string(Atspi.text), .string("CharacterCount")]))
                targets.append((index, 2))
            }
            if include.contains(.value), node.interfaces.contains(.value), !node.isPassword {
                for property in ["CurrentValue", "MinimumValue", "MaximumValue"] {
                    calls.append((node.path, Atspi.properties, "Get", [.string(Atspi.value), .string(property)]))
                }
                targets.append((index, 3))
            }
        }
        guard !calls.isEmpty else { return extras }
        let results = try await batch(app, calls, timeout: deadline.remaining(cap: config.smallCallTimeout),
                                      deadline: deadline)
        var position = 0
        var textCalls: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        var textTargets: [Int] = []
        for (index, kind) in targets {
            switch kind {
            case 0:
                if let fields = (try? results[position].get())?.first?.structFields, fields.count == 4 {
                    let v = fields.map { $0.integerValue ?? 0 }
                    extras[index].bounds = (v[0], v[1], v[2], v[3])
                }
                position += 1
            case 1:
                let list = (try? results[position].get())?.first?.arrayValue ?? []
                extras[index].actions = list.compactMap { $0.structFields?.first?.stringValue?.lowercased() }
                position += 1
            case 2:
                if let count = (try? results[position].get())?.first?.integerValue, count > 0 {
                    // GTK4 returns "" for GetText(0, -1): always pass the character count.
                    textCalls.append((nodes[index].path, Atspi.text, "GetText",
                                      [.int32(0), .int32(Int32(min(count, 100_000)))]))
                    textTargets.append(index)
                } else {
                    extras[index].text = ""
                }
                position += 1
            default:
                let values = (0..<3).map { (try? results[position + $0].get())?.first?.doubleValue }
                if let current = values[0] {
                    extras[index].value = (current, values[1] ?? current, values[2] ?? current)
                }
                position += 3
            }
        }
        if !textCalls.isEmpty {
            let texts = try await batch(app, textCalls, timeout: deadline.remaining(cap: config.smallCallTimeout),
                                        deadline: deadline)
            for (offset, index) in textTargets.enumerated() {
                extras[index].text = (try? texts[offset].get())?.first?.stringValue ?? ""
            }
        }
        return extras
    }

    static func nodeJSON(_ node: AccessibleNode, ref: String, parent: String?, depth: Int, extras: NodeExtras,
                         actions: Bool) -> JSONValue
    {
        var object: JSONObject = [
            "ref": .string(ref), "parent": parent.map(JSONValue.string) ?? .null, "depth": .int(Int64(depth)),
            "role": .string(AtspiNames.role(node.role)), "name": .string(node.name),
            "states": .array(node.states.names.map(JSONValue.string)),
        ]
        if !node.description.isEmpty { object.append("description", .string(node.description)) }
        if let b = extras.bounds {
            object.append("bounds", ["x": .int(b.x), "y": .int(b.y), "width": .int(b.width), "height": .int(b.height)])
        }
        if actions, let list = extras.actions { object.append("actions", .array(list.map(JSONValue.string))) }
        if let text = extras.text, !node.isPassword { object.append("text", .string(text)) }
        if let v = extras.value, !node.isPassword {
            object.append("value", ["current": .double(v.current), "minimum": .double(v.minimum), "maximum": .double(v.maximum)])
        }
        if let relations = extras.relations {
            var r = JSONObject()
            for (key, refs) in relations.sorted(by: { $0.key < $1.key }) { r.append(key, .array(refs.map(JSONValue.string))) }
            object.append("relations", .object(r))
        }
        return .object(object)
    }

    /// States left out of outlines: nearly every visible widget has them, so they only cost tokens.
    static let quietStates: Set<String> = [
        "enabled", "sensitive", "visible", "showing", "opaque", "single-line", "horizontal", "vertical",
        "resizable", "selectable-text", "has-tooltip",
    ]

    /// One line per node: `  - ROLE "NAME" [ref=REF] (STATE, …): TEXT`.
    static func outline(_ nodes: [EmittedNode], _ extras: [NodeExtras], _ refs: [String]) -> String {
        var out = ""
        for (index, item) in nodes.enumerated() {
            out += String(repeating: "  ", count: item.depth)
            out += "- " + AtspiNames.role(item.node.role) + " \"" + outlineEscaped(item.node.name) + "\" [ref=" + refs[index] + "]"
            let states = item.node.states.names.filter { !quietStates.contains($0) }
            if !states.isEmpty { out += " (" + states.joined(separator: ", ") + ")" }
            if !item.node.isPassword, let text = extras[index].text, !text.isEmpty {
                out += ": " + outlineEscaped(String(text.prefix(500)))
            }
            out += "\n"
        }
        return out
    }

    static func outlineEscaped(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n", "\r", "\r\n", "\t": out += " "
            default: out.append(ch)
            }
        }
        return out
    }
}
