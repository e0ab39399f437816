import ATSPI
import Foundation
import JSONRPC
import Logging
import Synchronization
import Testing

/// The kept, event-fed trees of atk-bridge apps (`TreeCache`) against a real GTK3 app: after
/// every kind of change the fixture can make, a snapshot served from the kept tree must equal
/// what a service without one reads afresh with `Cache.GetItems`.
@Suite("Kept trees on GTK3", .enabled(if: Desktop.enabled, Desktop.reason), .serialized)
struct TreeCacheTests {
    /// A second service that never keeps trees: the reference every kept snapshot is compared with.
    static let uncached = UncachedService()

    /// What a snapshot says about each node, without the refs (each service issues its own).
    static func shape(_ snapshot: JSONValue) -> [String] {
        let nodes = snapshot.nodes
        var index: [String: Int] = [:]
        for (position, node) in nodes.enumerated() { index[node.ref ?? ""] = position }
        return nodes.map { node in
            let parent = node["parent"]?.stringValue.flatMap { index[$0] }.map(String.init) ?? "-"
            return "\(node["depth"]?.intValue ?? -1) ^\(parent) \(node["role"]?.stringValue ?? "?") "
                + "\"\(node["name"]?.stringValue ?? "")\" [\(node.states.sorted().joined(separator: ","))] "
                + "\(node["description"]?.stringValue ?? "")"
        }
    }

    /// Lets the app finish announcing a change (some atk-bridge signals follow from idle handlers).
    static func settle() async throws { try await Task.sleep(for: .milliseconds(400)) }

    /// Snapshots with the kept tree and afresh; records every node that differs.
    @discardableResult
    static func expectSame(_ service: AccessibilityService, _ app: FixtureApp, _ step: String,
                           sourceLocation: SourceLocation = #_sourceLocation) async throws -> String?
    {
        let kept = try await service.snapshot(app: app.name, maxNodes: 20_000)
        let fresh = try await uncached.get().snapshot(app: app.name, maxNodes: 20_000)
        let keptShape = shape(kept)
        let freshShape = shape(fresh)
        #expect(fresh["stats"]?["tree_cache"] == nil, "\(step): the reference service keeps no trees",
                sourceLocation: sourceLocation)
        if keptShape != freshShape {
            let diff = zip(keptShape, freshShape).enumerated().filter { $0.element.0 != $0.element.1 }.prefix(5)
                .map { "#\($0.offset): kept \($0.element.0) | fresh \($0.element.1)" }
            Issue.record("\(step): kept snapshot (\(keptShape.count) nodes) differs from a fresh one (\(freshShape.count)): \(diff)",
                         sourceLocation: sourceLocation)
        }
        return kept["stats"]?["tree_cache"]?.stringValue
    }

    @Test("Repeat snapshots come from the kept tree and equal a fresh read after states, names, text, focus and values change")
    func keptTreeFollowsChanges() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 5, service: service)
        #expect(try await Self.expectSame(service, app, "first snapshot") == "miss")
        #expect(try await Self.expectSame(service, app, "second snapshot") == "hit")

        let first = try await service.snapshot(app: app.name)
        let subscribe = try #require(first.node(role: "check box", name: "Subscribe")?.ref)
        _ = try await service.activate(ref: subscribe)
        #expect(await app.waitForLine("toggled Subscribe 1"))
        try await Self.settle()
        #expect(try await Self.expectSame(service, app, "check box toggled (checked, status label renamed)") == "hit")
        let after = try await service.snapshot(app: app.name)
        #expect(after.node(role: "check box", name: "Subscribe")?.states.contains("checked") == true)
        #expect(after.node(role: "label", name: "Status: Subscribe on") != nil)

        _ = try await service.fillField(app: app.name, field: "Name", value: "Alice")
        #expect(await app.waitForLine("text-changed name 5"))
        try await Self.settle()
        #expect(try await Self.expectSame(service, app, "text typed (status label renamed)") == "hit")

        let email = try await GTK3Tests.field(service, app, label: "Email")
        _ = try await service.focus(ref: email)
        try await Self.settle()
        #expect(try await Self.expectSame(service, app, "focus moved") == "hit")
        let focused = try await service.snapshot(app: app.name).nodes.first { $0.ref == email }
        #expect(focused?.states.contains("focused") == true)

        let quantity = try await GTK3Tests.field(service, app, label: "Quantity")
        _ = try await service.setValue(ref: quantity, value: 7)
        #expect(await app.waitForLine("value-changed quantity 7"))
        try await Self.settle()
        #expect(try await Self.expectSame(service, app, "value set") == "hit")
    }

    @Test("A removed row is never served from the kept tree: the next snapshot reads the app again")
    func structuralChangeRereads() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 3, service: service)
        try await Self.expectSame(service, app, "first snapshot")
        let before = try await service.snapshot(app: app.name)
        #expect(before["stats"]?["tree_cache"] == "hit")
        #expect(before.node(role: "push button", name: "Temporary") != nil)
        let remove = try #require(before.node(role: "push button", name: "Remove row")?.ref)
        _ = try await service.activate(ref: remove)
        #expect(await app.waitForLine("removed Temporary"))
        try await Self.settle()
        #expect(try await Self.expectSame(service, app, "row removed") == "miss")
        let after = try await service.snapshot(app: app.name)
        // The row's panel, its button and its check box.
        #expect(after.node(role: "push button", name: "Temporary") == nil)
        #expect(after.nodes.count == before.nodes.count - 3)
        #expect(after["stats"]?["tree_cache"] == "hit")
    }

    @Test("Snapshots taken right after each change, without waiting, never miss what the app announced first")
    func noWaitAfterAction() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 2, service: service)
        let first = try await service.snapshot(app: app.name)
        let check = try #require(first.node(role: "check box", name: "Check 1")?.ref)
        for round in 1...6 {
            // The app's toggled handler runs before DoAction returns, and its StateChanged signal
            // goes out before the reply to our barrier: the kept tree must already show it.
            _ = try await service.activate(ref: check)
            let now = try await service.snapshot(app: app.name)
            let checked = now.node(role: "check box", name: "Check 1")?.states.contains("checked")
            #expect(checked == (round % 2 == 1), "round \(round)")
        }
    }

    @Test("Twenty concurrent first snapshots of a new app share reads and all equal a fresh one")
    func concurrentFirstSnapshots() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", rows: 50, service: service)
        let fresh = Self.shape(try await Self.uncached.get().snapshot(app: app.name))
        let shapes = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<20 { group.addTask { Self.shape(try await service.snapshot(app: app.name)) } }
            var all: [[String]] = []
            for try await shape in group { all.append(shape) }
            return all
        }
        #expect(shapes.count == 20)
        for shape in shapes { #expect(shape == fresh) }
    }

    @Test("An app that exits is forgotten with its kept tree (-32002), and a stopped one answers -32004, not its kept tree")
    func goneAndFrozen() async throws {
        var config = Desktop.testConfig()
        config.smallCallTimeout = .milliseconds(500)
        let service = try await AccessibilityService.start(config: config, logger: Logger(label: "tree-cache-frozen"))
        defer { Task { await service.shutdown() } }
        let frozen = try await FixtureApp.launch("gtk3", rows: 2, service: service)
        _ = try await service.snapshot(app: frozen.name)
        #expect(try await service.snapshot(app: frozen.name)["stats"]?["tree_cache"] == "hit")
        frozen.signal(SIGSTOP)
        let error = await rpcError { try await service.snapshot(app: frozen.name) }
        #expect(error?.code == .appNotResponding)
        frozen.signal(SIGCONT)

        let leaving = try await FixtureApp.launch("gtk3", rows: 2, service: service)
        _ = try await service.snapshot(app: leaving.name)
        leaving.terminate()
        try await Task.sleep(for: .milliseconds(300))
        let gone = await rpcError { try await service.snapshot(app: leaving.name) }
        #expect(gone?.code == .appNotFound)
    }
}

final class UncachedService: Sendable {
    private let task = Mutex<Task<AccessibilityService, any Error>?>(nil)

    func get() async throws -> AccessibilityService {
        try Desktop.requireAvailable()
        let task = self.task.withLock { t in
            if let t { return t }
            var config = Desktop.testConfig()
            config.treeCache = false
            let created = Task { try await AccessibilityService.start(config: config, logger: Logger(label: "uncached")) }
            t = created
            return created
        }
        return try await task.value
    }
}
