import CAtspiConstants
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

    /// Parses `["bounds", "actions", "text", "value"]`.
    public init(names: [String]) throws(AccessibilityError) {
        var set: SnapshotIncludes = []
        for name in names {
            switch name {
            case "bounds": set.insert(.bounds)
            case "actions": set.insert(.actions)
            case "text": set.insert(.text)
            case "value": set.insert(.value)
            default: throw .invalidArgument(field: "include", "unknown field \(Text.quoted(name))")
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
    /// The name of the node's `labelled-by` label, read for fields whose own name is empty:
    /// results name them by it (and keep the raw name as `raw_name`).
    var label: String?
    /// The node has text or a value the caller may not read, so the result leaves it out.
    var contentWithheld = false
}

/// What `tree.snapshot` returns and how much of it.
public struct SnapshotOptions: Sendable {
    public var maxDepth: Int?
    public var maxNodes: Int
    public var filter: SnapshotFilter
    public var format: SnapshotFormat
    public var include: SnapshotIncludes

    public init(maxDepth: Int? = nil, maxNodes: Int = 5000, filter: SnapshotFilter = .all, format: SnapshotFormat = .json,
                include: SnapshotIncludes = []) {
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
        self.filter = filter
        self.format = format
        self.include = include
    }
}

extension AccessibilityService {
    /// `tree.snapshot`: the app's tree (or the subtree under `root`) as a flat depth-first list
    /// of nodes or as an outline.
    ///
    /// Content (text of fields and labels, values of ranges) is included only for the elements
    /// `content` allows (all, when it is nil); the others carry ``NodeExtras/contentWithheld``
    /// and their content is never read from the app.
    public func snapshot(_ target: ResolvedTarget, options: SnapshotOptions = SnapshotOptions(),
                         content: ContentDecider? = nil) async throws(AccessibilityError) -> SnapshotResult
    {
        let started = Deadline.now()
        let deadline = Deadline(after: config.requestDeadline)
        let handle = try await registry.live(target.app.id)
        var rootPath = handle.rootPath
        if let root = target.element {
            rootPath = root.path.isEmpty ? try self.target(ref: root.ref).path : root.path
        }
        let tree = try await fetchTree(handle, root: rootPath, maxDepth: options.maxDepth, maxNodes: options.maxNodes,
                                       pruneHidden: options.filter == .showing, deadline: deadline)
        let fetchedAt = Deadline.now()
        var emitted = TreeOrder.depthFirst(tree, maxDepth: options.maxDepth, showingOnly: options.filter == .showing)
        var truncated = tree.truncated
        var extras = [NodeExtras](repeating: NodeExtras(), count: emitted.count)

        var wantActions = options.include.contains(.actions)
        if options.filter == .interactive {
            wantActions = true
            extras = try await readExtras(handle, emitted.map(\.node), include: [.actions], deadline: deadline)
            (emitted, extras) = TreeOrder.keepInteractive(emitted, extras)
        }
        if emitted.count > options.maxNodes {
            emitted.removeLast(emitted.count - options.maxNodes)
            extras.removeLast(extras.count - options.maxNodes)
            truncated = true
        }
        var more = options.include
        if options.filter == .interactive { more.remove(.actions) }
        if options.format == .outline { more.insert(.text) }
        let textOnlyForFields = options.format == .outline && !options.include.contains(.text)
        var allowed: [Bool]?
        if more.contains(.text) || more.contains(.value), let content {
            let nodes = try await withInterfaces(handle, emitted.map(\.node), deadline: deadline)
            for index in emitted.indices { emitted[index].node = nodes[index] }
            allowed = try await decideContent(handle, nodes, parents: emitted.map(\.parentIndex), root: rootPath, tree: tree,
                                              include: more, textOnlyForFields: textOnlyForFields, decide: content,
                                              deadline: deadline)
            for index in emitted.indices where allowed?[index] == false
                && Self.wantsContent(nodes[index], include: more, textOnlyForFields: textOnlyForFields)
            {
                extras[index].contentWithheld = true
            }
        }
        if !more.isEmpty {
            let read = try await readExtras(handle, emitted.map(\.node), include: more, textOnlyForFields: textOnlyForFields,
                                            contentAllowed: allowed, deadline: deadline)
            for index in extras.indices {
                if more.contains(.bounds) { extras[index].bounds = read[index].bounds }
                if more.contains(.actions) { extras[index].actions = read[index].actions }
                if more.contains(.text) { extras[index].text = read[index].text }
                if more.contains(.value) { extras[index].value = read[index].value }
            }
        }
        // Labels only name fields better: a snapshot out of time, or an app that does not
        // answer, goes without them.
        if !deadline.hasPassed, !tree.deadlineReached,
           let labels = try? await labelsOfUnnamed(handle, emitted.map(\.node), known: tree, deadline: deadline)
        {
            for (index, label) in labels.enumerated() where label != nil { extras[index].label = label }
        }
        let refList = refs.refs(app: handle.id, elements: emitted.map { ($0.node.path, $0.node.role, $0.node.name) })
        var stats = SnapshotStats(nodes: emitted.count, ms: Double(Deadline.now() - started) / 1_000_000,
                                  fetchMs: Double(fetchedAt - started) / 1_000_000, method: tree.method)
        stats.deadlineReached = tree.deadlineReached
        stats.cacheFilled = tree.cacheFilled
        stats.gapsFilled = tree.gapsFilled
        stats.childrenCapped = tree.childrenCapped
        stats.contentWithheld = extras.reduce(0) { $0 + ($1.contentWithheld ? 1 : 0) }
        return SnapshotResult(app: handle.id, nodes: emitted, extras: extras, refs: refList, actions: wantActions,
                              outline: options.format == .outline ? Outline.render(emitted, extras, refList) : nil,
                              truncated: truncated, stats: stats)
    }

    /// For fields (``labelledRoles``) whose accessible name is empty, the name of their first
    /// `labelled-by` label (nil elsewhere): a GTK3 entry beside a separate label widget is `""`
    /// to AT-SPI, and "Name" to the person looking at it.
    func labelsOfUnnamed(_ app: AppHandle, _ nodes: [AccessibleNode], known: FetchedTree?,
                         deadline: Deadline) async throws(AccessibilityError) -> [String?]
    {
        let unnamed = nodes.indices.filter { nodes[$0].name.isEmpty && Self.labelledRoles.contains(nodes[$0].role) }
        var labels = [String?](repeating: nil, count: nodes.count)
        guard !unnamed.isEmpty else { return labels }
        let found = try await firstLabels(app, of: unnamed.map { nodes[$0].path }, known: known, deadline: deadline)
        for (index, label) in zip(unnamed, found) where label?.isEmpty == false { labels[index] = label }
        return labels
    }

    /// Whether a result with `include` would carry content of this node.
    static func wantsContent(_ node: AccessibleNode, include: SnapshotIncludes, textOnlyForFields: Bool) -> Bool {
        guard !node.isPassword else { return false }
        if include.contains(.value), node.interfaces.contains(.value) { return true }
        guard include.contains(.text), node.interfaces.contains(.text) else { return false }
        return !textOnlyForFields || (node.states.isEditable && node.interfaces.contains(.editableText))
    }

    /// Asks `decide` about every node whose content the result would carry (by role and display
    /// name, the label for field-like roles); true for nodes that carry none.
    private func decideContent(_ app: AppHandle, _ nodes: [AccessibleNode], parents: [Int?], root: String, tree: FetchedTree,
                               include: SnapshotIncludes, textOnlyForFields: Bool, decide: ContentDecider,
                               deadline: Deadline) async throws(AccessibilityError) -> [Bool]
    {
        let candidates = nodes.indices.filter { Self.wantsContent(nodes[$0], include: include, textOnlyForFields: textOnlyForFields) }
        guard !candidates.isEmpty else { return [Bool](repeating: true, count: nodes.count) }
        let labelled = candidates.filter { Self.labelledRoles.contains(nodes[$0].role) }
        let labels = try await firstLabels(app, of: labelled.map { nodes[$0].path }, known: tree, deadline: deadline)
        var labelOf: [Int: String] = [:]
        for (index, label) in zip(labelled, labels) { if let label, !label.isEmpty { labelOf[index] = label } }
        let origins = try await pageOrigins(app, nodes, parents: parents, root: root, deadline: deadline)
        let subjects = candidates.map {
            ContentSubject(role: AtspiNames.role(nodes[$0].role), name: labelOf[$0] ?? nodes[$0].name, origin: origins[$0])
        }
        let answers = decide(subjects)
        var allowed = [Bool](repeating: true, count: nodes.count)
        for (position, index) in candidates.enumerated() { allowed[index] = position < answers.count && answers[position] }
        return allowed
    }

    /// The origin of the web page holding each node (nil outside pages, and in apps without web
    /// content): its nearest `document web` ancestor in the output, read once per document, or,
    /// for nodes above every document of the output, the page holding the snapshot's root.
    func pageOrigins(_ app: AppHandle, _ nodes: [AccessibleNode], parents: [Int?], root: String,
                     deadline: Deadline) async throws(AccessibilityError) -> [String?]
    {
        var origins = [String?](repeating: nil, count: nodes.count)
        guard app.hasWebContent else { return origins }
        let documents = nodes.indices.filter { nodes[$0].role == ATSPI_ROLE_DOCUMENT_WEB.rawValue }
        let replies = try await calls.batch(app, documents.map { (nodes[$0].path, Atspi.document, "GetAttributes", []) },
                                            timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
        var documentOrigin: [Int: String?] = [:]
        for (index, reply) in zip(documents, replies) {
            documentOrigin[index] = Self.origin(fromDocumentAttributes: try? reply.get())
        }
        // Above the output's own documents: the page the root is in, if it is in one.
        let rootOrigin = nodes.first?.role == ATSPI_ROLE_DOCUMENT_WEB.rawValue ? nil : try await self.documentOrigin(app, path: root)
        for index in nodes.indices {
            var current: Int? = index
            var found: String??
            while let at = current {
                if let origin = documentOrigin[at] {
                    found = origin
                    break
                }
                current = parents[at]
            }
            origins[index] = found ?? rootOrigin
        }
        return origins
    }

    /// Reads bounds, actions, text and values for nodes, all calls of one kind at once.
    /// Text and values of password fields are never read.
    /// Nodes whose `contentAllowed` entry is false get neither text nor value read.
    func readExtras(_ app: AppHandle, _ given: [AccessibleNode], include: SnapshotIncludes,
                    textOnlyForFields: Bool = false, contentAllowed: [Bool]? = nil,
                    deadline: Deadline) async throws(AccessibilityError) -> [NodeExtras]
    {
        // Which calls apply depends on the interfaces, which walks leave out.
        let nodes = include.isEmpty ? given : try await withInterfaces(app, given, deadline: deadline)
        var extras = [NodeExtras](repeating: NodeExtras(), count: nodes.count)
        var pending: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        var targets: [(index: Int, kind: ExtraKind)] = []
        var actionNodes: [Int] = []
        for (index, node) in nodes.enumerated() {
            let contentOK = contentAllowed?[index] ?? true
            if include.contains(.bounds), node.interfaces.contains(.component), node.states.isShowing {
                pending.append((node.path, Atspi.component, "GetExtents", [.uint32(0)]))
                targets.append((index, .bounds))
            }
            if include.contains(.actions), node.interfaces.contains(.action) { actionNodes.append(index) }
            let wantsText = textOnlyForFields ? (node.states.isEditable && node.interfaces.contains(.editableText)) : true
            if include.contains(.text), node.interfaces.contains(.text), !node.isPassword, wantsText, contentOK {
                pending.append((node.path, Atspi.properties, "Get", [.string(Atspi.text), .string("CharacterCount")]))
                targets.append((index, .textLength))
            }
            if include.contains(.value), node.interfaces.contains(.value), !node.isPassword, contentOK {
                for property in ["CurrentValue", "MinimumValue", "MaximumValue"] {
                    pending.append((node.path, Atspi.properties, "Get", [.string(Atspi.value), .string(property)]))
                }
                targets.append((index, .value))
            }
        }
        if !actionNodes.isEmpty {
            let names = try await actionNames(app, paths: actionNodes.map { nodes[$0].path }, deadline: deadline)
            for (index, list) in zip(actionNodes, names) { extras[index].actions = list }
        }
        guard !pending.isEmpty else { return extras }
        let results = try await calls.batch(app, pending, timeout: deadline.remaining(cap: config.readTimeout),
                                      deadline: deadline)
        var position = 0
        var textCalls: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        var textTargets: [Int] = []
        for (index, kind) in targets {
            switch kind {
            case .bounds:
                if let extents = Extents(try? results[position].get()) {
                    extras[index].bounds = (extents.x, extents.y, extents.width, extents.height)
                }
                position += 1
            case .textLength:
                if let count = (try? results[position].get())?.first?.integerValue, count > 0 {
                    // GTK4 returns "" for GetText(0, -1): always pass the character count.
                    textCalls.append((nodes[index].path, Atspi.text, "GetText",
                                      [.int32(0), .int32(Int32(min(count, 100_000)))]))
                    textTargets.append(index)
                } else {
                    extras[index].text = ""
                }
                position += 1
            case .value:
                let values = (0..<3).map { (try? results[position + $0].get())?.first?.doubleValue }
                if let current = values[0] {
                    extras[index].value = (current, values[1] ?? current, values[2] ?? current)
                }
                position += 3
            }
        }
        if !textCalls.isEmpty {
            let texts = try await calls.batch(app, textCalls, timeout: deadline.remaining(cap: config.readTimeout),
                                        deadline: deadline)
            for (offset, index) in textTargets.enumerated() {
                extras[index].text = (try? texts[offset].get())?.first?.stringValue ?? ""
            }
        }
        return extras
    }

    /// The calls `readExtras` makes per node, in the order of its replies.
    enum ExtraKind {
        case bounds, textLength, value
    }
}
