@testable import ATSPI
import Foundation
import JSONRPC
import Testing

/// `SnapshotResult.write(into:)` must write exactly the text of its `JSONValue` form.
@Suite("Snapshot writer")
struct SnapshotWriterTests {
    static func written(_ result: SnapshotResult) -> [UInt8] {
        var writer = JSONWriter(capacity: result.estimatedSize)
        result.write(into: &writer)
        return writer.bytes
    }

    /// Strings a hostile app could put in names, descriptions, texts and actions.
    static let hostile: [String] = [
        "", "plain", "quote \" and backslash \\ and slash /", "\u{0}\u{1}\u{8}\u{9}\u{A}\u{B}\u{C}\u{D}\u{1B}\u{1F}\u{7F}",
        "bidi \u{202E}txet\u{202C} \u{2066}iso\u{2069} \u{200F}", "line\u{2028}sep\u{2029}para",
        // Invalid UTF-8 (a lone surrogate, a truncated sequence) as a D-Bus string can only arrive:
        // repaired to U+FFFD when it becomes a Swift string.
        String(decoding: [0xED, 0xA0, 0x80, 0x41, 0xC3], as: UTF8.self),
        "émoji 👩‍👩‍👧 𝄞 e\u{301}", String(repeating: "long ", count: 400), "</script><!--", "\u{FEFF}bom",
    ]

    static func node(_ index: Int, role: UInt32, name: String, description: String, states: UInt64) -> AccessibleNode {
        AccessibleNode(path: "/org/a11y/atspi/accessible/\(index)", role: role, name: name, description: description,
                       states: StateSet(bits: states), interfaces: [], children: [])
    }

    static func hostileResult(outline: Bool = false) -> SnapshotResult {
        var nodes: [EmittedNode] = []
        var extras: [NodeExtras] = []
        var refs: [String] = []
        let roles: [UInt32] = [75, 23, 43, 61, AtspiNames.passwordRole, 7, 29, 9999, 0]
        for (index, name) in hostile.enumerated() {
            for (variant, role) in roles.enumerated() {
                let position = nodes.count
                nodes.append(EmittedNode(node: node(position, role: role, name: name,
                                                    description: variant % 2 == 0 ? "" : hostile[(index + variant) % hostile.count],
                                                    states: variant == 0 ? 0 : (UInt64.max >> UInt64(variant * 3)) | 1 << 63),
                                         depth: variant * 7 + index, parentIndex: position == 0 ? nil : position - 1))
                var extra = NodeExtras()
                if variant % 3 == 0 { extra.bounds = (Int64(index) - 5, Int64.min + Int64(variant), Int64.max, 0) }
                if variant % 2 == 1 { extra.actions = [name, "click", ""] }
                if variant != 2 { extra.text = hostile[(index + 3) % hostile.count] + "s3cret-\(position)" }
                if variant % 4 == 1 {
                    let values: [(Double, Double, Double)] = [(0.5, -1e300, .infinity), (3, 0, 100), (.nan, -0.0, 1e15),
                                                              (0.1 + 0.2, 1e-7, 123456789.125)]
                    extra.value = values[index % 4]
                }
                if variant == 6 || variant == 3 { extra.contentWithheld = true }
                if variant == 5 { extra.relations = ["labelled-by": ["aaaa", name], "label-for": [], name: ["x"]] }
                if variant == 4 || variant == 7 { extra.label = hostile[(index + 5) % hostile.count] }
                extras.append(extra)
                refs.append(index % 2 == 0 ? "ref\(position)" : name + "\(position)")
            }
        }
        var stats = SnapshotStats(nodes: nodes.count, ms: 12.34, fetchMs: 0.5, method: "cache")
        stats.deadlineReached = true
        stats.contentWithheld = 2
        return SnapshotResult(app: ":1.42 \"app\"\u{0}", nodes: nodes, extras: extras, refs: refs, actions: true,
                              outline: outline ? Outline.render(nodes, extras, refs) : nil,
                              truncated: true, stats: stats)
    }

    @Test("Outline: a name or text that carries [ref=…] or quotes cannot pass for the daemon's ref; labels name unnamed fields")
    func outlineEscapes() {
        let nodes = [EmittedNode(node: Self.node(0, role: 43, name: "OK\" [ref=fake1] \"", description: "", states: 0),
                                 depth: 0, parentIndex: nil),
                     EmittedNode(node: Self.node(1, role: 61, name: "", description: "", states: 0), depth: 1, parentIndex: 0)]
        var labelled = NodeExtras()
        labelled.label = "Name"
        labelled.text = "see [ref=fake2]"
        let outline = Outline.render(nodes, [NodeExtras(), labelled], ["real1", "real2"])
        let lines = outline.split(separator: "\n").map(String.init)
        #expect(lines[0] == #"- push button "OK\" \[ref=fake1] \"" [ref=real1]"#)
        #expect(lines[1] == #"  - text "Name" [ref=real2]: see \[ref=fake2]"#)
        #expect(!outline.contains(" [ref=fake"))
    }

    @Test("Hostile strings, every optional field, unknown roles and states: the same bytes as the JSONValue")
    func hostileNodes() throws {
        let result = Self.hostileResult()
        let expected = JSONWriter.bytes(result.json)
        #expect(Self.written(result) == expected)
        // And the text is JSON the strict parser accepts.
        _ = try JSONParser.parse(Self.written(result))
        // Password fields never carry text or value, whichever writer.
        let text = String(decoding: Self.written(result), as: UTF8.self)
        for (index, item) in result.nodes.enumerated() where item.node.isPassword {
            #expect(!text.contains("s3cret-\(index)\""))
        }
        #expect(text.contains("s3cret-0\""))
    }

    @Test("Outline results and results without actions write the same bytes too")
    func otherShapes() {
        let outline = Self.hostileResult(outline: true)
        #expect(Self.written(outline) == JSONWriter.bytes(outline.json))
        let plain = Self.hostileResult()
        let withoutActions = SnapshotResult(app: plain.app, nodes: plain.nodes, extras: plain.extras, refs: plain.refs,
                                            actions: false, outline: nil, truncated: false,
                                            stats: SnapshotStats(nodes: 0, ms: 0, fetchMs: 0, method: "walk"))
        #expect(Self.written(withoutActions) == JSONWriter.bytes(withoutActions.json))
        let empty = SnapshotResult(app: "", nodes: [], extras: [], refs: [], actions: false, outline: nil, truncated: false,
                                   stats: SnapshotStats(nodes: 0, ms: 0, fetchMs: 0, method: "cache"))
        #expect(Self.written(empty) == JSONWriter.bytes(empty.json))
    }

    @Test("Every role number and state bit is written as its name")
    func namesTables() {
        for role in UInt32(0)...UInt32(200) {
            var writer = JSONWriter()
            NodeWire.write(Self.node(1, role: role, name: "", description: "", states: 0), ref: "r", parent: nil,
                                     depth: 0, extras: NodeExtras(), actions: false, into: &writer)
            let expected = NodeWire.json(Self.node(1, role: role, name: "", description: "", states: 0),
                                                         ref: "r", parent: nil, depth: 0, extras: NodeExtras(), actions: false)
            #expect(writer.bytes == JSONWriter.bytes(expected))
        }
        for bit in 0..<64 {
            let node = Self.node(1, role: 43, name: "", description: "", states: 1 << UInt64(bit))
            var writer = JSONWriter()
            NodeWire.write(node, ref: "r", parent: "p", depth: bit, extras: NodeExtras(), actions: false, into: &writer)
            let expected = NodeWire.json(node, ref: "r", parent: "p", depth: bit, extras: NodeExtras(), actions: false)
            #expect(writer.bytes == JSONWriter.bytes(expected))
        }
    }

    @Test("On real GTK3 snapshots (every include, every filter) both writers agree",
          .enabled(if: Desktop.enabled, Desktop.reason))
    func realSnapshots() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 30, service: service)
        for filter in [SnapshotFilter.all, .showing, .interactive] {
            for include in [SnapshotIncludes(), [.bounds, .actions, .text, .value]] {
                let result = try await service.snapshotResult(app: app.name, maxNodes: 100_000, filter: filter, include: include)
                #expect(result.nodeCount > 10)
                #expect(Self.written(result) == JSONWriter.bytes(result.json), "filter \(filter), include \(include)")
            }
        }
        let outline = try await service.snapshotResult(app: app.name, format: .outline)
        #expect(Self.written(outline) == JSONWriter.bytes(outline.json))
    }
}
