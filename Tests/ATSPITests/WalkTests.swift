import ATSPI
import Foundation
import JSONRPC
import Testing

/// The pipelined walk of toolkits without a usable cache (GTK4, Qt5).
@Suite("Walks of GTK4 and Qt5", .enabled(if: Desktop.enabled, Desktop.reason))
struct WalkTests {
    /// What a node says about itself, compared between a snapshot and `element.get`.
    static func summary(_ node: JSONValue) -> String {
        let actions = (node["actions"]?.arrayValue ?? []).compactMap(\.stringValue)
        return "\(node["role"]?.stringValue ?? "?") \"\(node["name"]?.stringValue ?? "")\""
            + " description=\"\(node["description"]?.stringValue ?? "")\" states=\(node.states) actions=\(actions)"
    }

    @Test("GTK4: properties filled from Cache.GetItems equal the per-node calls, description included")
    func gtk4CacheFill() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", rows: 10, service: service)
        let snapshot = try await service.snapshot(app: app.name, include: [.actions])
        #expect(snapshot["stats"]?["method"] == "walk")
        let filled = snapshot["stats"]?["cache_filled"]?.intValue ?? 0
        #expect(filled > 60, "the walk took the properties of most nodes from Cache.GetItems")
        let submit = try #require(snapshot.node(role: "push button", name: "Submit"))
        #expect(submit["description"] == "Sends the form")
        for node in snapshot.nodes where node["depth"]?.intValue != 0 {
            let single = try await service.get(ref: try #require(node.ref))
            #expect(Self.summary(node) == Self.summary(single))
        }
    }

    @Test("GTK4: a snapshot after a row is removed leaves it out")
    func gtk4AfterRemoval() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", rows: 12, service: service)
        let before = try await service.snapshot(app: app.name)
        #expect(before.node(role: "push button", name: "Temporary") != nil)
        let remove = try #require(before.node(role: "push button", name: "Remove row")?.ref)
        _ = try await service.activate(ref: remove)
        #expect(await app.waitForLine("removed Temporary"))
        let after = try await service.snapshot(app: app.name)
        #expect(after.node(role: "push button", name: "Temporary") == nil)
        #expect(after.node(role: "check box", name: "Temporary check") == nil)
        #expect(after.nodes.count < before.nodes.count)
        let reference = try Pyatspi.dump(app.name)
        #expect(after.nodes.map { "\($0["depth"]!.intValue!) \($0["role"]!.stringValue!) \($0["name"]!.stringValue!)" }
            == reference.map { "\($0.depth) \($0.role) \($0.name)" })
    }

    @Test("max_nodes and max_depth cut a pipelined walk where the level-by-level walk did")
    func limits() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk4", rows: 40, service: service)
        let full = try await service.snapshot(app: app.name)
        let capped = try await service.snapshot(app: app.name, maxNodes: 50)
        #expect(capped["truncated"] == true)
        #expect(capped.nodes.count == 50)
        // Breadth first: the 50 nodes read are the shallowest ones.
        let depths = full.nodes.compactMap { $0["depth"]?.intValue }.sorted()
        #expect(capped.nodes.compactMap { $0["depth"]?.intValue }.max() == depths[49])
        let shallow = try await service.snapshot(app: app.name, maxDepth: 3)
        #expect(shallow["truncated"] == false)
        #expect(shallow.nodes.map(Self.summary) == full.nodes.filter { $0["depth"]!.intValue! <= 3 }.map(Self.summary))
    }
}
