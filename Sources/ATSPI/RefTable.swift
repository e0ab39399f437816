import Synchronization

/// Element refs: short random handles for (app, object path, role), issued by this process.
///
/// A client can only name elements it was shown: handles are 50 random bits, so guessing one
/// is hopeless, and a ref is nothing but a key into this table. The same element keeps its ref
/// across snapshots; if a path comes back with another role (GTK3 reuses paths) it gets a new ref
/// and the old one fails re-validation.
///
/// The table is bounded: past `maxRefs` entries or `maxBytes` of paths and names (an app chooses
/// its names and may make them huge), the least recently used refs are dropped, down to 90 % of
/// each bound. A dropped ref answers -32003 like a stale one; a new snapshot issues a fresh ref.
/// Refs issued or used by the call that crosses a bound are never the ones dropped.
final class RefTable: Sendable {
    struct Entry: Sendable {
        let app: String
        let path: String
        let role: UInt32
        var name: String
    }

    struct Limits: Sendable {
        var maxRefs = 200_000
        var maxBytes = 64 << 20
    }

    private struct Slot {
        let ref: String
        var entry: Entry
        var lastUse: UInt64
        var bytes: Int { Self.cost(entry) }
        static func cost(_ entry: Entry) -> Int { 96 + entry.app.utf8.count + entry.path.utf8.count + entry.name.utf8.count }
    }

    /// Slots by number, so a snapshot's thousands of refs cost one path hash each: the app is
    /// looked up once per call, and a slot is updated in place.
    private struct State {
        var slots: [Slot?] = []
        var freeSlots: [Int] = []
        var byRef: [String: Int] = [:]
        /// The current slot of each path, per app. A slot whose path got a newer ref (another
        /// role) is only in `byRef`.
        var byApp: [String: [String: Int]] = [:]
        var clock: UInt64 = 0
        var bytes = 0
    }

    let limits: Limits
    private let state = Mutex(State())

    init(limits: Limits = Limits()) { self.limits = limits }

    /// Refs currently held, and the bytes they account for.
    var usage: (refs: Int, bytes: Int) { state.withLock { ($0.byRef.count, $0.bytes) } }

    /// The ref of an element, issuing one if needed.
    func ref(app: String, path: String, role: UInt32, name: String) -> String {
        refs(app: app, elements: [(path, role, name)])[0]
    }

    /// Issues refs for many elements under one lock.
    func refs(app: String, elements: [(path: String, role: UInt32, name: String)]) -> [String] {
        state.withLock { s in
            s.clock += 1
            let now = s.clock
            // Taken out and put back, so adding paths does not copy the app's table.
            var paths = s.byApp.removeValue(forKey: app) ?? [:]
            let refs = elements.map { element in
                if let number = paths[element.path], s.slots[number]?.entry.role == element.role {
                    if s.slots[number]!.entry.name != element.name {
                        s.bytes -= s.slots[number]!.bytes
                        s.slots[number]!.entry.name = element.name
                        s.bytes += s.slots[number]!.bytes
                    }
                    s.slots[number]!.lastUse = now
                    return s.slots[number]!.ref
                }
                var ref = Self.randomRef()
                while s.byRef[ref] != nil { ref = Self.randomRef() }
                let slot = Slot(ref: ref, entry: Entry(app: app, path: element.path, role: element.role, name: element.name),
                                lastUse: now)
                let number: Int
                if let free = s.freeSlots.popLast() {
                    number = free
                    s.slots[number] = slot
                } else {
                    number = s.slots.count
                    s.slots.append(slot)
                }
                s.byRef[ref] = number
                s.bytes += slot.bytes
                paths[element.path] = number
                return ref
            }
            s.byApp[app] = paths
            evictIfNeeded(&s, keepingUsesFrom: now)
            return refs
        }
    }

    func lookup(_ ref: String) -> Entry? {
        state.withLock { s in
            guard let number = s.byRef[ref], let slot = s.slots[number] else { return nil }
            s.clock += 1
            s.slots[number]!.lastUse = s.clock
            return slot.entry
        }
    }

    /// The ref already issued for an element, if any.
    func existing(app: String, path: String) -> (ref: String, entry: Entry)? {
        state.withLock { s in
            guard let number = s.byApp[app]?[path], let slot = s.slots[number] else { return nil }
            return (slot.ref, slot.entry)
        }
    }

    /// Forgets every ref of an app that has gone.
    func removeApp(_ app: String) {
        state.withLock { s in
            s.byApp.removeValue(forKey: app)
            for number in s.slots.indices where s.slots[number]?.entry.app == app { remove(number, from: &s) }
        }
    }

    private func remove(_ number: Int, from s: inout State) {
        guard let slot = s.slots[number] else { return }
        s.slots[number] = nil
        s.freeSlots.append(number)
        s.byRef.removeValue(forKey: slot.ref)
        s.bytes -= slot.bytes
        // The path may have a newer ref (another role); only drop the mapping if it is this one.
        if s.byApp[slot.entry.app]?[slot.entry.path] == number {
            s.byApp[slot.entry.app]?.removeValue(forKey: slot.entry.path)
            if s.byApp[slot.entry.app]?.isEmpty == true { s.byApp.removeValue(forKey: slot.entry.app) }
        }
    }

    /// Drops least recently used refs once a bound is crossed (amortized: down to 90 %).
    private func evictIfNeeded(_ s: inout State, keepingUsesFrom now: UInt64) {
        guard s.byRef.count > limits.maxRefs || s.bytes > limits.maxBytes else { return }
        let targetRefs = limits.maxRefs * 9 / 10
        let targetBytes = limits.maxBytes * 9 / 10
        let candidates = s.slots.indices.compactMap { number in s.slots[number].map { (number, $0.lastUse) } }
            .filter { $0.1 < now }.sorted { $0.1 < $1.1 }
        for (number, _) in candidates {
            if s.byRef.count <= targetRefs && s.bytes <= targetBytes { break }
            remove(number, from: &s)
        }
    }

    private static let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")

    private static func randomRef() -> String {
        var generator = SystemRandomNumberGenerator()
        var bits = generator.next() as UInt64
        var chars: [Character] = []
        for _ in 0..<10 {
            chars.append(alphabet[Int(bits & 31)])
            bits >>= 5
        }
        return String(chars)
    }
}
