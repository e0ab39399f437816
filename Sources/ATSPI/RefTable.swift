import Synchronization

/// Element refs: short random handles for (app, object path, role), issued by this process.
///
/// A client can only name elements it was shown: handles are 50 random bits, so guessing one
/// is hopeless, and a ref is nothing but a key into this table. The same element keeps its ref
/// across snapshots; if a path comes back with another role (GTK3 reuses paths) it gets a new ref
/// and the old one fails re-validation.
final class RefTable: Sendable {
    struct Entry: Sendable {
        let app: String
        let path: String
        let role: UInt32
        var name: String
    }

    private struct Key: Hashable {
        let app: String
        let path: String
    }

    private struct State {
        var byRef: [String: Entry] = [:]
        var byKey: [Key: String] = [:]
    }

    private let state = Mutex(State())

    /// The ref of an element, issuing one if needed.
    func ref(app: String, path: String, role: UInt32, name: String) -> String {
        state.withLock { s in
            let key = Key(app: app, path: path)
            if let existing = s.byKey[key], let entry = s.byRef[existing], entry.role == role {
                if entry.name != name { s.byRef[existing]?.name = name }
                return existing
            }
            var ref = Self.randomRef()
            while s.byRef[ref] != nil { ref = Self.randomRef() }
            s.byRef[ref] = Entry(app: app, path: path, role: role, name: name)
            s.byKey[key] = ref
            return ref
        }
    }

    /// Issues refs for many elements under one lock.
    func refs(app: String, elements: [(path: String, role: UInt32, name: String)]) -> [String] {
        state.withLock { s in
            elements.map { element in
                let key = Key(app: app, path: element.path)
                if let existing = s.byKey[key], let entry = s.byRef[existing], entry.role == element.role {
                    if entry.name != element.name { s.byRef[existing]?.name = element.name }
                    return existing
                }
                var ref = Self.randomRef()
                while s.byRef[ref] != nil { ref = Self.randomRef() }
                s.byRef[ref] = Entry(app: app, path: element.path, role: element.role, name: element.name)
                s.byKey[key] = ref
                return ref
            }
        }
    }

    func lookup(_ ref: String) -> Entry? {
        state.withLock { $0.byRef[ref] }
    }

    /// The ref already issued for an element, if any.
    func existing(app: String, path: String) -> (ref: String, entry: Entry)? {
        state.withLock { s in
            guard let ref = s.byKey[Key(app: app, path: path)], let entry = s.byRef[ref] else { return nil }
            return (ref, entry)
        }
    }

    /// Forgets every ref of an app that has gone.
    func removeApp(_ app: String) {
        state.withLock { s in
            let refs = s.byRef.filter { $0.value.app == app }.map(\.key)
            for ref in refs {
                if let entry = s.byRef.removeValue(forKey: ref) { s.byKey.removeValue(forKey: Key(app: app, path: entry.path)) }
            }
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
