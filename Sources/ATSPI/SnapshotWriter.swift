public import JSONRPC

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
    let truncated: Bool
    let stats: JSONObject

    /// Number of nodes in the result.
    public var nodeCount: Int { nodes.count }

    /// The result as a JSON value.
    public var json: JSONValue {
        var result: JSONObject = ["app": .string(app)]
        if let outline {
            result.append("outline", .string(outline))
        } else {
            var values: [JSONValue] = []
            values.reserveCapacity(nodes.count)
            for (index, item) in nodes.enumerated() {
                values.append(AccessibilityService.nodeJSON(item.node, ref: refs[index],
                                                            parent: item.parentIndex.map { refs[$0] }, depth: item.depth,
                                                            extras: extras[index], actions: actions))
            }
            result.append("nodes", .array(values))
        }
        result.append("truncated", .bool(truncated))
        result.append("stats", .object(stats))
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
                Self.writeNode(item.node, ref: refs[index], parent: item.parentIndex.map { refs[$0] },
                               depth: item.depth, extras: extras[index], actions: actions, into: &writer)
            }
            writer.raw("]")
        }
        writer.raw(truncated ? #","truncated":true"# : #","truncated":false"#)
        writer.raw(#","stats":"#)
        writer.write(.object(stats))
        writer.raw("}")
    }

    /// Bytes to reserve for the written result: a little more than a typical node takes.
    public var estimatedSize: Int { 256 + nodes.count * 160 + (outline?.utf8.count ?? 0) }

    /// The text of ``AccessibilityService/nodeJSON(_:ref:parent:depth:extras:actions:)``, member
    /// for member in the same order.
    static func writeNode(_ node: AccessibleNode, ref: String, parent: String?, depth: Int, extras: NodeExtras,
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
        writer.writeString(node.name)
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
