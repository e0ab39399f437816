@testable import ATSPI
@testable import DBus
import CAtspiConstants
import Foundation
import JSONRPC
import Synchronization
import Testing

/// `TreeCache` without a desktop: how signals are read, replayed onto reads in flight, and the
/// bounds. The bus is a private dbus-daemon (the match rules need one); signals are fed in
/// directly, as the connection's thread would.
@Suite("Kept trees: signals, replay, bounds")
struct TreeCacheUnitTests {
    static let app = ":1.42"

    static func signal(_ interface: String, _ member: String, path: String = "/obj/1", sender: String = app,
                       _ detail: String = "", _ detail1: Int32 = 0, _ data: DBusValue = .int32(0)) -> DBusSignal
    {
        DBusSignal(sender: sender, path: path, interface: interface, member: member,
                   args: [.string(detail), .int32(detail1), .int32(0), .variant(data),
                          .dictionary(keySignature: "s", valueSignature: "v", [])])
    }

    static func object(_ member: String, path: String = "/obj/1", sender: String = app, _ detail: String = "",
                       _ detail1: Int32 = 0, _ data: DBusValue = .int32(0)) -> DBusSignal
    {
        signal("org.a11y.atspi.Event.Object", member, path: path, sender: sender, detail, detail1, data)
    }

    static func tree(_ count: Int = 3) -> [String: AccessibleNode] {
        var nodes: [String: AccessibleNode] = [:]
        for index in 0..<count {
            nodes["/obj/\(index)"] = AccessibleNode(path: "/obj/\(index)", role: ATSPI_ROLE_PUSH_BUTTON.rawValue,
                                                    name: "Button \(index)", description: "", states: StateSet(bits: 0),
                                                    interfaces: [], children: [])
        }
        return nodes
    }

    static let checked = ATSPI_STATE_CHECKED.rawValue

    @Test("Signals map to the changes they make to GetItems fields; anything else that may touch the tree re-reads")
    func classification() {
        #expect(TreeCache.change(from: Self.object("StateChanged", "checked", 1)) == .state(path: "/obj/1", bit: Self.checked, on: true))
        #expect(TreeCache.change(from: Self.object("StateChanged", "multi-line", 0))
            == .state(path: "/obj/1", bit: ATSPI_STATE_MULTI_LINE.rawValue, on: false))
        #expect(TreeCache.change(from: Self.object("StateChanged", "defunct", 1)) == .structural)
        #expect(TreeCache.change(from: Self.object("StateChanged", "no-such-state", 1)) == .structural)
        #expect(TreeCache.change(from: Self.object("PropertyChange", "accessible-name", 0, .string("Hi")))
            == .name(path: "/obj/1", "Hi"))
        #expect(TreeCache.change(from: Self.object("PropertyChange", "accessible-description", 0, .string("d")))
            == .description(path: "/obj/1", "d"))
        #expect(TreeCache.change(from: Self.object("PropertyChange", "accessible-role", 0, .uint32(ATSPI_ROLE_LABEL.rawValue)))
            == .role(path: "/obj/1", ATSPI_ROLE_LABEL.rawValue))
        // A name that is not a string is not guessed at.
        #expect(TreeCache.change(from: Self.object("PropertyChange", "accessible-name", 0, .int32(3))) == .structural)
        #expect(TreeCache.change(from: Self.object("PropertyChange", "accessible-parent")) == .structural)
        #expect(TreeCache.change(from: Self.object("PropertyChange", "accessible-value")) == .none)
        #expect(TreeCache.change(from: Self.object("ChildrenChanged", "add", 0)) == .structural)
        #expect(TreeCache.change(from: Self.object("TextChanged", "insert", 0, .string("x"))) == .none)
        #expect(TreeCache.change(from: Self.signal("org.a11y.atspi.Event.Window", "Activate")) == .structural)
        #expect(TreeCache.change(from: Self.signal(Atspi.cache, "AddAccessible")) == .structural)
        #expect(TreeCache.change(from: Self.signal(Atspi.cache, "RemoveAccessible")) == .structural)
        #expect(TreeCache.change(from: Self.signal("org.example.Other", "Thing")) == .none)
    }

    @Test("A kept tree follows state, name and role signals; a structural one makes it no longer current")
    func followsSignals() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let cache = TreeCache(bus: connection)
        #expect(await cache.watch(Self.app))
        _ = await cache.refresh(Self.app) { .success(Self.tree()) }
        #expect(cache.hasCurrentTree(Self.app))
        cache.receive(Self.object("StateChanged", "checked", 1))
        cache.receive(Self.object("PropertyChange", path: "/obj/2", "accessible-name", 0, .string("Renamed")))
        // Other apps' signals and objects we never saw change nothing.
        cache.receive(Self.object("PropertyChange", sender: ":1.99", "accessible-name", 0, .string("Other app")))
        cache.receive(Self.object("StateChanged", path: "/obj/unknown", "checked", 1))
        let nodes = try #require(cache.currentTree(Self.app))
        #expect(nodes["/obj/1"]?.states.contains(bit: Self.checked) == true)
        #expect(nodes["/obj/1"]?.name == "Button 1")
        #expect(nodes["/obj/2"]?.name == "Renamed")
        #expect(nodes["/obj/unknown"] == nil)
        cache.receive(Self.object("StateChanged", "checked", 0))
        #expect(cache.currentTree(Self.app)?["/obj/1"]?.states.contains(bit: Self.checked) == false)
        #expect(cache.stats.applied == 4)
        cache.receive(Self.object("ChildrenChanged", path: "/obj/0", "add", 3))
        #expect(!cache.hasCurrentTree(Self.app))
        #expect(cache.currentTree(Self.app) == nil)
        #expect(cache.stats.invalidated == 1)
    }

    @Test("Signals that arrive while a read is in flight are replayed onto its result, in order")
    func replayDuringRead() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let cache = TreeCache(bus: connection)
        #expect(await cache.watch(Self.app))
        let result = await cache.refresh(Self.app) {
            // The app answered GetItems before these changes reached us.
            cache.receive(Self.object("StateChanged", "checked", 1))
            cache.receive(Self.object("PropertyChange", "accessible-name", 0, .string("First")))
            cache.receive(Self.object("PropertyChange", "accessible-name", 0, .string("Second")))
            return .success(Self.tree())
        }
        // The caller gets what the app said; what is kept also has the changes since.
        #expect(try result.get()?["/obj/1"]?.name == "Button 1")
        let kept = try #require(cache.currentTree(Self.app))
        #expect(kept["/obj/1"]?.name == "Second")
        #expect(kept["/obj/1"]?.states.contains(bit: Self.checked) == true)

        // A structural change during a read: the result is returned but not kept.
        cache.receive(Self.object("ChildrenChanged", "remove", 0))
        let second = await cache.refresh(Self.app) {
            cache.receive(Self.signal(Atspi.cache, "RemoveAccessible"))
            return .success(Self.tree(2))
        }
        #expect(try second.get()?.count == 2)
        #expect(cache.currentTree(Self.app) == nil)
    }

    @Test("Concurrent refreshes share one read; failures are returned to every caller and keep nothing")
    func sharedRead() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let cache = TreeCache(bus: connection)
        #expect(await cache.watch(Self.app))
        let reads = ReadCounter()
        let results = await withTaskGroup(of: Int?.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    let result = await cache.refresh(Self.app) {
                        reads.count.withLock { $0 += 1 }
                        try? await Task.sleep(for: .milliseconds(200))
                        return .success(Self.tree(5))
                    }
                    return try? result.get()?.count
                }
            }
            var counts: [Int?] = []
            for await count in group { counts.append(count) }
            return counts
        }
        #expect(results == Array(repeating: 5, count: 10))
        #expect(reads.count.withLock { $0 } == 1)

        cache.receive(Self.object("ChildrenChanged", "add", 0))
        let failed = await cache.refresh(Self.app) { .failure(RPCError(.appNotResponding, "timeout")) }
        #expect((try? failed.get()) == nil)
        #expect(cache.currentTree(Self.app) == nil)
    }

    @Test("Bounded: least recently used trees go first, a tree over the bound is not kept, unused trees expire")
    func bounds() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let cache = TreeCache(bus: connection, limits: .init(maxNodes: 10))
        for app in [":1.1", ":1.2"] {
            #expect(await cache.watch(app))
            _ = await cache.refresh(app) { .success(Self.tree(4)) }
        }
        _ = cache.currentTree(":1.1")  // :1.2 is now the least recently used
        #expect(await cache.watch(":1.3"))
        _ = await cache.refresh(":1.3") { .success(Self.tree(4)) }
        #expect(cache.currentTree(":1.1") != nil)
        #expect(cache.currentTree(":1.2") == nil)
        #expect(cache.currentTree(":1.3") != nil)
        #expect(await cache.watch(":1.4"))
        let big = await cache.refresh(":1.4") { .success(Self.tree(11)) }
        #expect(try big.get()?.count == 11)
        #expect(cache.currentTree(":1.4") == nil)

        let expiring = TreeCache(bus: connection, limits: .init(maxNodes: 10, idleNanoseconds: 50_000_000))
        #expect(await expiring.watch(Self.app))
        _ = await expiring.refresh(Self.app) { .success(Self.tree()) }
        #expect(expiring.currentTree(Self.app) != nil)
        try await Task.sleep(for: .milliseconds(120))
        #expect(expiring.currentTree(Self.app) == nil)
        #expect(expiring.stats.dropped == 1)
    }

    @Test("Without match rules (no watch) nothing is kept: the app is read fresh every time")
    func unwatchedKeepsNothing() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let cache = TreeCache(bus: connection)
        _ = await cache.refresh(Self.app) { .success(Self.tree()) }
        #expect(cache.currentTree(Self.app) == nil)
    }
}

final class ReadCounter: Sendable {
    let count = Mutex(0)
}
