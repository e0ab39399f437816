public import JSONRPC

// The one place the ATSPI module writes JSON: a snapshot of thousands of nodes is written
// straight into the reply (about ten times cheaper than building a value tree first; see
// docs/architecture.md), and every node-shaped result (`element.get`, `elements.find`) uses the
// same node writer so a node reads the same wherever it appears. Everything else in the module
// is typed and knows no JSON.

/// Counters of one snapshot (`stats` on the wire).
public struct SnapshotStats: Sendable, Hashable {
    public var nodes: Int
    /// Time in the service, and the part of it spent reading the app.
    public var ms: Double
    public var fetchMs: Double
    /// `cache` (one `Cache.GetItems`) or `walk`.
    public var method: String
    public var deadlineReached = false
    public var cacheFilled = 0
    public var gapsFilled = 0
    public var childrenCapped = 0
    /// Nodes whose content the caller may not read.
    public var contentWithheld = 0

    public var json: JSONValue {
        var object: JSONObject = ["nodes": .int(Int64(nodes)), "ms": .double((ms * 100).rounded() / 100),
                                  "method": .string(method), "fetch_ms": .double((fetchMs * 100).rounded() / 100)]
        if deadlineReached { object.append("deadline_reached", true) }
        if cacheFilled > 0 { object.append("cache_filled", .int(Int64(cacheFilled))) }
        if gapsFilled > 0 { object.append("gaps_filled", .int(Int64(gapsFilled))) }
        if childrenCapped > 0 { object.append("children_capped", .int(Int64(childrenCapped))) }
        if contentWithheld > 0 { object.append("content_withheld", .int(Int64(contentWithheld))) }
        return .object(object)
    }
}

/// A finished `tree.snapshot`, ready to be written.
///
/// ``json`` builds the result as a ``JSONValue``; ``write(into:)`` writes the same JSON text
/// straight from the nodes (about ten times cheaper for thousands of nodes: no value tree, no
/// per-node objects, pre-encoded role and state names). The two must stay byte-identical: the
/// tests compare them on real snapshots and on hostile strings.
public struct SnapshotResult: Sendable {
    let app: String
    let nodes: [EmittedNode]
    let extras: [NodeExtras]
    let refs: [String]
    /// Whether nodes carry their `actions` (asked for, or the interactive filter).
    let actions: Bool
    /// The outline text, for the outline format.
    let outline: String?
    public let truncated: Bool
    public let stats: SnapshotStats

    /// Number of nodes in the result.
    public var nodeCount: Int { nodes.count }

    /// The outline text, for the outline format.
    public var outlineText: String? { outline }

    /// The result as a JSON value.
    public var json: JSONValue {
        var result: JSONObject = ["app": .string(app)]
        if let outline {
            result.append("outline", .string(outline))
        } else {
            var values: [JSONValue] = []
            values.reserveCapacity(nodes.count)
            for (index, item) in nodes.enumerated() {
                values.append(NodeWire.json(item.node, ref: refs[index],
                                                            parent: item.parentIndex.map { refs[$0] }, depth: item.depth,
                                                            extras: extras[index], actions: actions))
            }
            result.append("nodes", .array(values))
        }
        result.append("truncated", .bool(truncated))
        result.append("stats", stats.json)
        return .object(result)
    }

    /// Writes the JSON text of ``json`` (as ``JSONWriter/write(_:)`` would, keys unsorted).
    public func write(into writer: inout JSONWriter) {
        writer.raw(#"{"app":"#)
        writer.writeString(app)
        if let outline {
            writer.raw(#","outline":"#)
            writer.writeString(outline)
        } else {
            writer.raw(#","nodes":["#)
            for (index, item) in nodes.enumerated() {
                if index > 0 { writer.raw(",") }
                NodeWire.write(item.node, ref: refs[index], parent: item.parentIndex.map { refs[$0] },
                               depth: item.depth, extras: extras[index], actions: actions, into: &writer)
            }
            writer.raw("]")
        }
        writer.raw(truncated ? #","truncated":true"# : #","truncated":false"#)
        writer.raw(#","stats":"#)
        writer.write(stats.json)
        writer.raw("}")
    }

    /// Bytes to reserve for the written result: a little more than a typical node takes.
    public var estimatedSize: Int { 256 + nodes.count * 160 + (outline?.utf8.count ?? 0) }

}

/// The wire form of one node, as a value and as text written straight into a reply.
enum NodeWire {
    static func json(_ node: AccessibleNode, ref: String, parent: String?, depth: Int, extras: NodeExtras,
                     actions: Bool) -> JSONValue
    {
        var object: JSONObject = [
            "ref": .string(ref), "parent": parent.map(JSONValue.string) ?? .null, "depth": .int(Int64(depth)),
            "role": .string(AtspiNames.role(node.role)), "name": .string(extras.label ?? node.name),
        ]
        if extras.label != nil { object.append("raw_name", .string(node.name)) }
        object.append("states", .array(node.states.names.map(JSONValue.string)))
        if !node.description.isEmpty { object.append("description", .string(node.description)) }
        if let b = extras.bounds {
            object.append("bounds", ["x": .int(b.x), "y": .int(b.y), "width": .int(b.width), "height": .int(b.height)])
        }
        if actions, let list = extras.actions { object.append("actions", .array(list.map(JSONValue.string))) }
        if let text = extras.text, !node.isPassword { object.append("text", .string(text)) }
        if let v = extras.value, !node.isPassword {
            object.append("value", ["current": .double(v.current), "minimum": .double(v.minimum), "maximum": .double(v.maximum)])
        }
        if extras.contentWithheld { object.append("content_withheld", true) }
        if let relations = extras.relations {
            var r = JSONObject()
            for (key, refs) in relations.sorted(by: { $0.key < $1.key }) { r.append(key, .array(refs.map(JSONValue.string))) }
            object.append("relations", .object(r))
        }
        return .object(object)
    }

    /// The text of ``json(_:ref:parent:depth:extras:actions:)``, member for member in the same order.
    static func write(_ node: AccessibleNode, ref: String, parent: String?, depth: Int, extras: NodeExtras,
                          actions: Bool, into writer: inout JSONWriter)
    {
        writer.raw(#"{"ref":"#)
        writer.writeString(ref)
        writer.raw(#","parent":"#)
        if let parent { writer.writeString(parent) } else { writer.raw("null") }
        writer.raw(#","depth":"#)
        writer.writeInt(Int64(depth))
        writer.raw(#","role":"#)
        if node.role < EncodedNames.roles.count {
            writer.raw(EncodedNames.roles[Int(node.role)])
        } else {
            writer.writeString(AtspiNames.role(node.role))
        }
        writer.raw(#","name":"#)
        writer.writeString(extras.label ?? node.name)
        if extras.label != nil {
            writer.raw(#","raw_name":"#)
            writer.writeString(node.name)
        }
        writer.raw(#","states":["#)
        var remaining = node.states.bits
        var first = true
        while remaining != 0 {
            let bit = remaining.trailingZeroBitCount
            remaining &= remaining - 1
            let name = EncodedNames.states[bit]
            if name.isEmpty { continue }
            if !first { writer.raw(",") }
            first = false
            writer.raw(name)
        }
        writer.raw("]")
        if !node.description.isEmpty {
            writer.raw(#","description":"#)
            writer.writeString(node.description)
        }
        if let b = extras.bounds {
            writer.raw(#","bounds":{"x":"#)
            writer.writeInt(b.x)
            writer.raw(#","y":"#)
            writer.writeInt(b.y)
            writer.raw(#","width":"#)
            writer.writeInt(b.width)
            writer.raw(#","height":"#)
            writer.writeInt(b.height)
            writer.raw("}")
        }
        if actions, let list = extras.actions {
            writer.raw(#","actions":["#)
            for (index, action) in list.enumerated() {
                if index > 0 { writer.raw(",") }
                writer.writeString(action)
            }
            writer.raw("]")
        }
        if let text = extras.text, !node.isPassword {
            writer.raw(#","text":"#)
            writer.writeString(text)
        }
        if let v = extras.value, !node.isPassword {
            writer.raw(#","value":{"current":"#)
            writer.writeDouble(v.current)
            writer.raw(#","minimum":"#)
            writer.writeDouble(v.minimum)
            writer.raw(#","maximum":"#)
            writer.writeDouble(v.maximum)
            writer.raw("}")
        }
        if extras.contentWithheld { writer.raw(#","content_withheld":true"#) }
        if let relations = extras.relations {
            writer.raw(#","relations":{"#)
            for (index, (key, refs)) in relations.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { writer.raw(",") }
                writer.writeString(key)
                writer.raw(":[")
                for (position, ref) in refs.enumerated() {
                    if position > 0 { writer.raw(",") }
                    writer.writeString(ref)
                }
                writer.raw("]")
            }
            writer.raw("}")
        }
        writer.raw("}")
    }
}

/// Role and state names as JSON string literals, encoded once.
enum EncodedNames {
    /// By role number; numbers without a name are written as "unknown", as ``AtspiNames/role(_:)`` does.
    static let roles: [[UInt8]] = {
        let count = Int((AtspiTables.roleNames.keys.max() ?? 0) + 1)
        return (0..<count).map { encode(AtspiNames.role(UInt32($0))) }
    }()

    /// By state bit (64 entries); empty for bits without a name, which are left out.
    static let states: [[UInt8]] = (0..<64).map { bit in
        AtspiTables.stateNames[UInt32(bit)].map(encode) ?? []
    }

    private static func encode(_ s: String) -> [UInt8] {
        var writer = JSONWriter(capacity: s.utf8.count + 2)
        writer.writeString(s)
        return writer.bytes
    }
}

extension ElementNode {
    /// The node as `element.get` (with `app`) and `elements.find` return it.
    public var json: JSONValue {
        var value = NodeWire.json(node, ref: ref, parent: parent, depth: depth, extras: extras, actions: showsActions)
        if let app, case .object(var object) = value {
            object.append("app", .string(app))
            value = .object(object)
        }
        return value
    }
}
