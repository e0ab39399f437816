import ATSPI
import Foundation
import JSONRPC
import Testing

/// GTK3 apps whose widgets were added at run time. atk-bridge's cache, and so `Cache.GetItems`,
/// never learns of a child packed with `gtk_box_pack_start` (or attached, or parented directly)
/// once its container's accessible exists: GTK3 announces only `gtk_container_add`. Snapshots
/// must still show what a walk shows.
@Suite("GetItems gaps on GTK3", .enabled(if: Desktop.enabled, Desktop.reason))
struct GapTests {
    /// Depth, role and name of each node, in order: what pyatspi's walk also gives.
    static func outline(_ snapshot: JSONValue) -> [String] {
        // The accessible name (raw_name where the label names a field), as pyatspi shows it.
        snapshot.nodes.map { "\($0["depth"]?.intValue ?? -1) \($0["role"]?.stringValue ?? "") \(($0["raw_name"] ?? $0["name"])?.stringValue ?? "")" }
    }

    static func walked(_ app: FixtureApp) throws -> [String] {
        try Pyatspi.dump(app.name).map { "\($0.depth) \($0.role) \($0.name)" }
    }

    @Test("Rows added at run time, announced or not, appear in snapshots in the app's order, as a walk sees them")
    func addedRows() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 3, arguments: ["--add-button"], service: service)
        let before = try await service.snapshot(app: app.name)
        #expect(before["stats"]?["gaps_filled"] == nil)
        let add = try #require(before.node(role: "push button", name: "Add row")?.ref)
        for n in 1...4 {
            _ = try await service.activate(ref: add)
            #expect(await app.waitForLine("added \(n)"))
        }
        try await Task.sleep(for: .milliseconds(300))
        let grown = try await service.snapshot(app: app.name, include: [.actions])
        #expect(grown["stats"]?["method"] == "cache")
        // The two packed rows (odd n) were missing from GetItems: a panel, a button, a label and
        // a check box each.
        #expect(grown["stats"]?["gaps_filled"] == 8)
        #expect(grown.nodes.count == before.nodes.count + 4 * 4)
        #expect(Self.outline(grown) == (try Self.walked(app)))
        let order = grown.nodes.compactMap { $0["role"] == "push button" ? $0["name"]?.stringValue : nil }
        let position = { (name: String) in order.firstIndex(of: name) ?? -1 }
        #expect(position("Added 4") >= 0 && position("Added 1") >= 0)
        #expect(position("Added 4") < position("Added 2"))
        #expect(position("Added 2") < position("Temporary"))
        #expect(position("Button 2") < position("Added 1"))
        #expect(position("Added 1") < position("Added 3"))
        // Server-side search (Collection) walks the app's own children, so it finds them too.
        let found = try await service.find(app: app.name, role: "push button", name: "Added 3")
        #expect(found.nodes.count == 1)
        // A node that was read one by one is a full node: it can be acted on.
        let packed = try #require(grown.node(role: "push button", name: "Added 3"))
        #expect(packed["actions"]?.arrayValue?.first?.stringValue == "click")
        _ = try await service.activate(ref: try #require(packed.ref))
        #expect(await app.waitForLine("clicked Added 3"))
        let check = try #require(grown.node(role: "check box", name: "Added check 1")?.ref)
        _ = try await service.activate(ref: check)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await service.snapshot(app: app.name).node(role: "check box", name: "Added check 1")?.states
            .contains("checked") == true)
    }

    @Test("Rows removed after some were added: snapshots follow, and match a walk")
    func removedRows() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 2, arguments: ["--add-button"], service: service)
        let before = try await service.snapshot(app: app.name)
        let add = try #require(before.node(role: "push button", name: "Add row")?.ref)
        let remove = try #require(before.node(role: "push button", name: "Remove row")?.ref)
        for n in 1...3 {
            _ = try await service.activate(ref: add)
            #expect(await app.waitForLine("added \(n)"))
        }
        for what in ["added 3", "added 2"] {
            _ = try await service.activate(ref: remove)
            #expect(await app.waitForLine("removed \(what)"))
        }
        try await Task.sleep(for: .milliseconds(300))
        let after = try await service.snapshot(app: app.name)
        #expect(after.node(role: "push button", name: "Added 3") == nil)
        #expect(after.node(role: "push button", name: "Added 2") == nil)
        #expect(after.node(role: "push button", name: "Added 1") != nil)
        #expect(after.nodes.count == before.nodes.count + 4)
        #expect(Self.outline(after) == (try Self.walked(app)))
    }

    @Test("Without run-time additions nothing is read one by one (the fixtures' GetItems is complete)")
    func noGaps() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 50, service: service)
        let snapshot = try await service.snapshot(app: app.name)
        #expect(snapshot["stats"]?["gaps_filled"] == nil)
        #expect(snapshot.nodes.count == 4 * 50 + 28)
    }

    @Test("A table that manages its descendants (GTK3 tree view): its rows appear as a walk sees them")
    func smallTable() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", arguments: ["--table", "12"], service: service)
        let snapshot = try await service.snapshot(app: app.name)
        #expect(snapshot["truncated"] == false)
        #expect(snapshot.node(role: "table cell", name: "Item 11") != nil)
        #expect(Self.outline(snapshot) == (try Self.walked(app)))
    }

    @Test("A huge managed table is read only up to the per-container bound, and says it was cut")
    func hugeTable() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", arguments: ["--table", "20000"], service: service)
        try Self.expectCappedTable(try await service.snapshot(app: app.name), rows: 20_000)
    }

    @Test("A huge table scrolled to the middle shows the rows on screen and its headers, not the first rows")
    func scrolledTable() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", arguments: ["--table", "20000", "--scroll-row", "5000"],
                                              service: service)
        try Self.expectScrolledTable(try await service.snapshot(app: app.name), row: 5000)
    }

    /// A snapshot of a fixture whose managed table was scrolled so row `row` is in its middle:
    /// cut at the bound, the column header and that row among its children, not the first rows.
    static func expectScrolledTable(_ snapshot: JSONValue, row: Int, sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        let children = try cutTableChildren(snapshot, sourceLocation: sourceLocation)
        #expect(children.contains { $0["role"] == "table column header" && $0["name"] == "Item" },
                sourceLocation: sourceLocation)
        #expect(children.contains { $0["name"]?.stringValue == "Item \(row)" }, sourceLocation: sourceLocation)
        #expect(!children.contains { $0["name"] == "Item 0" }, sourceLocation: sourceLocation)
    }

    /// The children of the one managed table in a snapshot, after checking it was cut: exactly
    /// the bound of them, `truncated`, and `children_capped` 1.
    static func cutTableChildren(_ snapshot: JSONValue, sourceLocation: SourceLocation) throws -> [JSONValue] {
        let table = try #require(snapshot.nodes.first { $0.states.contains("manages-descendants") },
                                 sourceLocation: sourceLocation)
        let children = snapshot.nodes.filter { $0["parent"] == table["ref"] }
        #expect(children.count == AccessibilityService.managedChildLimit, sourceLocation: sourceLocation)
        #expect(snapshot["truncated"] == true, sourceLocation: sourceLocation)
        #expect(snapshot["stats"]?["children_capped"] == 1, sourceLocation: sourceLocation)
        return children
    }

    /// A snapshot of a fixture with one managed table of `rows` rows ("Item i"): exactly the
    /// bound of children, the first rows among them, the last not, and the cut reported.
    static func expectCappedTable(_ snapshot: JSONValue, rows: Int, sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        let children = try cutTableChildren(snapshot, sourceLocation: sourceLocation)
        #expect(children.contains { $0["name"] == "Item 0" }, sourceLocation: sourceLocation)
        #expect(!children.contains { $0["name"]?.stringValue == "Item \(rows - 1)" }, sourceLocation: sourceLocation)
    }
}

/// Walked apps (Qt5) with a table that manages its descendants: read by index up to the bound,
/// never with `GetChildren` (Qt would create an accessible for every cell).
@Suite("Managed tables in walks (Qt5)", .enabled(if: Desktop.enabled, Desktop.reason))
struct ManagedWalkTests {
    @Test("A small Qt table is walked cell by cell, as pyatspi sees it")
    func smallTable() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("qt5", arguments: ["--table", "30"], service: service)
        let snapshot = try await service.snapshot(app: app.name)
        #expect(snapshot["stats"]?["method"] == "walk")
        #expect(snapshot["truncated"] == false)
        #expect(snapshot.node(role: "table cell", name: "Item 29") != nil)
        #expect(GapTests.outline(snapshot) == (try GapTests.walked(app)))
    }

    @Test("A Qt table of 20,000 rows gives its first children up to the bound and says it was cut")
    func hugeTable() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("qt5", arguments: ["--table", "20000"], service: service)
        let snapshot = try await service.snapshot(app: app.name)
        #expect(snapshot.nodes.first { $0["role"] == "table" }?.states.contains("manages-descendants") == true)
        try GapTests.expectCappedTable(snapshot, rows: 20_000)
    }

    @Test("A huge Qt table scrolled to the middle shows the rows on screen and its headers")
    func scrolledTable() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("qt5", arguments: ["--table", "20000", "--scroll-row", "5000"],
                                              service: service)
        try GapTests.expectScrolledTable(try await service.snapshot(app: app.name), row: 5000)
    }
}
