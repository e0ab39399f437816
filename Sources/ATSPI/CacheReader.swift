import CAtspiConstants
import DBus
import Glibc

/// Reading a whole tree with one `Cache.GetItems` call (atk-bridge toolkits).
extension AccessibilityService {
    /// The tree under `root` from the app's cache; nil when the app has no usable cache.
    func fetchFromCache(_ app: AppHandle, root: String, deadline: Deadline) async throws(AccessibilityError) -> FetchedTree? {
        let items: [CacheItems.Item]
        do {
            items = try await calls.callDecoding(app, Atspi.cachePath, Atspi.cache, "GetItems",
                                           timeout: deadline.remaining(cap: config.bulkCallTimeout),
                                           deadline: deadline, decode: CacheItems.decode)
        } catch let error where error.meansNoCache {
            return nil
        }
        // A root the cache does not hold (a web document of Firefox's content process) says
        // nothing of its children there: walk it instead.
        guard !items.isEmpty, items.contains(where: { $0.node.path == root }) else { return nil }
        var tree = CacheItems.tree(items, root: root)
        try await fillGaps(app, &tree, deadline: deadline)
        return tree
    }

    /// Reads what atk-bridge's cache left out. GTK3 announces a child only when it is added
    /// with `gtk_container_add`; one packed with `gtk_box_pack_start`, attached to a grid or
    /// parented directly after its container's accessible exists never reaches the cache (nor
    /// any signal). Such a container reports more children than the cache lists: its children
    /// are asked for (that order is the app's) and the missing ones read node by node.
    /// Tables and trees that manage their descendants are left out below them (they may have
    /// millions of cells, made on demand): their first ``managedChildLimit`` children are read.
    func fillGaps(_ app: AppHandle, _ tree: inout FetchedTree, deadline: Deadline) async throws(AccessibilityError) {
        let gaps = tree.gapParents
        let managed = tree.managedParents
        guard !gaps.isEmpty || !managed.isEmpty else { return }
        var lists = try await readChildren(app, paths: gaps, timeout: deadline.remaining(cap: config.readTimeout),
                                           deadline: deadline)
        // The cache gives no count for these: ask for it.
        let counts = try await childCounts(app, of: managed, deadline: deadline)
        let bounded = try await readManagedChildren(app, of: Array(zip(managed, counts)), limit: Self.managedChildLimit,
                                                    deadline: deadline)
        lists += bounded.map { ($0.path, $0.children) }
        tree.childrenCapped = bounded.filter(\.capped).count
        for (parent, children) in lists { if let children { tree.setChildren(children, of: parent) } }
        let missing = lists.flatMap { $0.children ?? [] }.filter { tree.slot(of: $0) == nil }
        let known = tree
        let (found, complete) = try await readSubtrees(app, roots: missing, isKnown: { known.slot(of: $0) != nil },
                                                       deadline: deadline)
        tree.add(found.values)
        tree.gapsFilled = found.count
        tree.childrenCapped += found.values.filter(\.childrenCapped).count
        if !complete || tree.childrenCapped > 0 { tree.truncated = true }
    }

    /// Children a container that manages its descendants shows at most, per snapshot (in
    /// `Cache.GetItems` trees and in walks).
    public static let managedChildLimit = 200

    /// `ChildCount` of each object (nil where it did not answer).
    func childCounts(_ app: AppHandle, of paths: [String], deadline: Deadline) async throws(AccessibilityError) -> [Int?] {
        guard !paths.isEmpty else { return [] }
        let results = try await calls.batch(app, paths.map { ($0, Atspi.properties, "Get", [.string(Atspi.accessible), .string("ChildCount")]) },
                                      timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
        return results.map { Self.childCount(from: $0) }
    }

    static func childCount(from reply: Result<[DBusValue], DBusError>) -> Int? {
        (try? reply.get())?.first?.unwrapped.integerValue.map(Int.init)
    }

    /// Up to `limit` children of each managed container (`GetChildAtIndex`, given its
    /// `ChildCount`), never the whole list: `GetChildren` on a managed table would make the app
    /// create every cell. Which ones: ``managedWindows(_:of:limit:deadline:)``. `children` is nil
    /// where the count is unknown; `capped` when the object has more than `limit`.
    func readManagedChildren(_ app: AppHandle, of objects: [(path: String, count: Int?)], limit: Int, deadline: Deadline)
        async throws(AccessibilityError) -> [(path: String, children: [String]?, capped: Bool)]
    {
        guard !objects.isEmpty else { return [] }
        let windows = try await managedWindows(app, of: objects, limit: limit, deadline: deadline)
        var pending: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        var ranges: [Range<Int>?] = []
        for ((path, _), window) in zip(objects, windows) {
            guard let window else {
                ranges.append(nil)
                continue
            }
            ranges.append(pending.count..<(pending.count + window.indices.count))
            for index in window.indices { pending.append((path, Atspi.accessible, "GetChildAtIndex", [.int32(Int32(index))])) }
        }
        let children = try await calls.batch(app, pending, timeout: deadline.remaining(cap: config.readTimeout),
                                       deadline: deadline)
        return objects.indices.map { i in
            guard let range = ranges[i], let window = windows[i] else { return (objects[i].path, nil, false) }
            let cells = range.compactMap { (try? children[$0].get())?.first?.objectReference?.path }
            var seen = Set<String>()
            let list = (window.headers + cells).filter { $0 != "/org/a11y/atspi/null" && seen.insert($0).inserted }
            return (objects[i].path, Array(list.prefix(limit)), (objects[i].count ?? 0) > limit)
        }
    }

    /// Which children of each managed container to read (nil: count unknown): all of them up
    /// to `limit`. Beyond it, what the person sees: the column headers (`Table.GetColumnHeader`)
    /// and the children around the one at the middle of the container's extents (window
    /// coordinates, which Wayland has too). A container not on screen, or whose middle point
    /// gives nothing, shows its first `limit`.
    func managedWindows(_ app: AppHandle, of objects: [(path: String, count: Int?)], limit: Int, deadline: Deadline)
        async throws(AccessibilityError) -> [(headers: [String], indices: [Int])?]
    {
        var windows: [(headers: [String], indices: [Int])?] = objects.map {
            guard let count = $0.count, count >= 0 else { return nil }
            return ([], Array(0..<min(count, limit)))
        }
        let big = objects.indices.filter { (objects[$0].count ?? 0) > limit }
        guard !big.isEmpty, limit > 0 else { return windows }
        let windowCoordinates = DBusValue.uint32(1)
        var first: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        for i in big {
            first.append((objects[i].path, Atspi.component, "GetExtents", [windowCoordinates]))
            first.append((objects[i].path, Atspi.properties, "Get", [.string(Atspi.table), .string("NColumns")]))
        }
        let extents = try await calls.batch(app, first, timeout: deadline.remaining(cap: config.readTimeout),
                                      deadline: deadline)
        // Per container on screen: the cell at its middle point, then its column headers.
        var probes: [(object: Int, calls: Range<Int>)] = []
        var second: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        for (n, i) in big.enumerated() {
            guard let box = (try? extents[2 * n].get())?.first?.structFields?.compactMap(\.integerValue), box.count == 4,
                  box[2] > 0, box[3] > 0
            else { continue }
            let columns = Int(min(max(0, (try? extents[2 * n + 1].get())?.first?.unwrapped.integerValue ?? 0),
                                  Int64(limit / 4)))
            let start = second.count
            second.append((objects[i].path, Atspi.component, "GetAccessibleAtPoint",
                           [.int32(Int32(clamping: box[0] + box[2] / 2)), .int32(Int32(clamping: box[1] + box[3] / 2)),
                            windowCoordinates]))
            for column in 0..<columns {
                second.append((objects[i].path, Atspi.table, "GetColumnHeader", [.int32(Int32(column))]))
            }
            probes.append((i, start..<second.count))
        }
        guard !probes.isEmpty else { return windows }
        let replies = try await calls.batch(app, second, timeout: deadline.remaining(cap: config.readTimeout),
                                      deadline: deadline)
        func path(_ reply: Result<[DBusValue], DBusError>) -> String? {
            guard let path = (try? reply.get())?.first?.objectReference?.path, path != "/org/a11y/atspi/null" else {
                return nil
            }
            return path
        }
        var hits: [(object: Int, headers: [String])] = []
        var indexCalls: [(path: String, interface: String, member: String, args: [DBusValue])] = []
        for probe in probes {
            guard let middle = path(replies[probe.calls.lowerBound]) else { continue }
            hits.append((probe.object, replies[probe.calls.dropFirst()].compactMap(path)))
            indexCalls.append((middle, Atspi.accessible, "GetIndexInParent", []))
        }
        let positions = try await calls.batch(app, indexCalls, timeout: deadline.remaining(cap: config.readTimeout),
                                        deadline: deadline)
        for (hit, reply) in zip(hits, positions) {
            let count = objects[hit.object].count ?? 0
            guard let middle = (try? reply.get())?.first?.integerValue.map(Int.init), middle >= 0, middle < count else {
                continue
            }
            // Headers go first and the list is cut at `limit`: a full window shifted by half the
            // headers keeps the cells that remain centred on the middle one.
            windows[hit.object] = (hit.headers, Self.window(count: count, middle: middle + hit.headers.count / 2, limit: limit))
        }
        return windows
    }

    /// `limit` child indices of `count`, centred on `middle` (shifted to stay within them), ascending.
    static func window(count: Int, middle: Int, limit: Int) -> [Int] {
        let size = max(0, min(limit, count))
        let start = min(max(0, middle - size / 2), count - size)
        return Array(start..<(start + size))
    }

    /// Reads objects and everything under them node by node, breadth first (one batch a level),
    /// skipping objects already in `known`; at most ``gapNodeLimit`` nodes. `complete` is false
    /// when the limit or the deadline stopped it.
    func readSubtrees(_ app: AppHandle, roots: [String], isKnown: (String) -> Bool,
                      deadline: Deadline) async throws(AccessibilityError) -> (nodes: [String: AccessibleNode], complete: Bool)
    {
        var found: [String: AccessibleNode] = [:]
        var seen = Set<String>()
        var level = roots.filter { !isKnown($0) && seen.insert($0).inserted }
        while !level.isEmpty, found.count < Self.gapNodeLimit, !deadline.hasPassed {
            let batch = Array(level.prefix(Self.gapNodeLimit - found.count))
            let nodes = try await readNodes(app, paths: batch, withChildren: true,
                                            timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
            var next: [String] = []
            for node in nodes {
                found[node.path] = node
                next += node.children.filter { !isKnown($0) && seen.insert($0).inserted }
            }
            level = next
        }
        return (found, level.isEmpty)
    }

    /// Most nodes read one by one to fill what `GetItems` left out, per request.
    static let gapNodeLimit = 20_000

}

extension InterfaceSet {
    /// The interface named by these UTF-8 bytes (empty for interfaces not tracked), without
    /// making a string.
    init(nameBytes bytes: UnsafeRawBufferPointer) {
        self = Self.member(nameBytes: bytes)
    }

    private static func member(nameBytes bytes: UnsafeRawBufferPointer) -> InterfaceSet {
        guard bytes.count > prefix.count,
              prefix.withUnsafeBytes({ memcmp(bytes.baseAddress!, $0.baseAddress!, prefix.count) }) == 0
        else { return [] }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[prefix.count...])
        for (name, member) in suffixes where name.count == rest.count {
            if name.withUnsafeBytes({ memcmp(rest.baseAddress!, $0.baseAddress!, rest.count) }) == 0 { return member }
        }
        return []
    }

    private static let prefix = Array("org.a11y.atspi.".utf8)
    private static let suffixes: [([UInt8], InterfaceSet)] = [
        (Array("Action".utf8), .action), (Array("Component".utf8), .component), (Array("Text".utf8), .text),
        (Array("EditableText".utf8), .editableText), (Array("Value".utf8), .value),
        (Array("Selection".utf8), .selection), (Array("Collection".utf8), .collection),
        (Array("Application".utf8), .application),
    ]
}
