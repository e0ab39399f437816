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

    private struct Key: Hashable {
        let app: String
        let path: String
    }

    private struct Slot {
        var entry: Entry
        var lastUse: UInt64
        var bytes: Int { Self.cost(entry) }
        static func cost(_ entry: Entry) -> Int { 96 + entry.app.utf8.count + entry.path.utf8.count + entry.name.utf8.count }
    }

    private struct State {
        var byRef: [String: Slot] = [:]
        var byKey: [Key: String] = [:]
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
            let refs = elements.map { element in
                let key = Key(app: app, path: element.path)
                if let existing = s.byKey[key], var slot = s.byRef[existing], slot.entry.role == element.role {
                    if slot.entry.name != element.name {
                        s.bytes -= slot.bytes
                        slot.entry.name = element.name
                        s.bytes += slot.bytes
                    }
                    slot.lastUse = now
                    s.byRef[existing] = slot
                    return existing
                }
                var ref = Self.randomRef()
                while s.byRef[ref] != nil { ref = Self.randomRef() }
                let slot = Slot(entry: Entry(app: app, path: element.path, role: element.role, name: element.name), lastUse: now)
                s.byRef[ref] = slot
                s.bytes += slot.bytes
                s.byKey[key] = ref
                return ref
            }
            evictIfNeeded(&s, keepingUsesFrom: now)
            return refs
        }
    }

    func lookup(_ ref: String) -> Entry? {
        state.withLock { s in
            guard var slot = s.byRef[ref] else { return nil }
            s.clock += 1
            slot.lastUse = s.clock
            s.byRef[ref] = slot
            return slot.entry
        }
    }

    /// The ref already issued for an element, if any.
    func existing(app: String, path: String) -> (ref: String, entry: Entry)? {
        state.withLock { s in
            guard let ref = s.byKey[Key(app: app, path: path)], let slot = s.byRef[ref] else { return nil }
            return (ref, slot.entry)
        }
    }

    /// Forgets every ref of an app that has gone.
    func removeApp(_ app: String) {
        state.withLock { s in
            let refs = s.byRef.filter { $0.value.entry.app == app }.map(\.key)
            for ref in refs { remove(ref, from: &s) }
        }
    }

    private func remove(_ ref: String, from s: inout State) {
        guard let slot = s.byRef.removeValue(forKey: ref) else { return }
        s.bytes -= slot.bytes
        let key = Key(app: slot.entry.app, path: slot.entry.path)
        // The path may have a newer ref (another role); only drop the mapping if it is this one.
        if s.byKey[key] == ref { s.byKey.removeValue(forKey: key) }
    }

    /// Drops least recently used refs once a bound is crossed (amortized: down to 90 %).
    private func evictIfNeeded(_ s: inout State, keepingUsesFrom now: UInt64) {
        guard s.byRef.count > limits.maxRefs || s.bytes > limits.maxBytes else { return }
        let targetRefs = limits.maxRefs * 9 / 10
        let targetBytes = limits.maxBytes * 9 / 10
        let candidates = s.byRef.filter { $0.value.lastUse < now }.sorted { $0.value.lastUse < $1.value.lastUse }
        for (ref, _) in candidates {
            if s.byRef.count <= targetRefs && s.bytes <= targetBytes { break }
            remove(ref, from: &s)
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
