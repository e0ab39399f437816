import Synchronization

/// What the bridge remembers for one MCP session: where each ref it has shown lives, and the
/// values written into password fields (removed from every later result, in case an app
/// echoes them somewhere the daemon does not know is secret).
final class SessionMemory: Sendable {
    private struct State {
        var scopes: [String: RefScope] = [:]
        var secrets: Set<String> = []
        /// Apps whose diffs are read with filter `all` (see ``ToolBridge``).
        var readAll: Set<String> = []
    }
    private let state = Mutex(State())
    /// Large snapshots kept for their later pages.
    let snapshots = SnapshotStore()
    /// Bound on remembered refs; the oldest snapshot's refs are simply forgotten.
    private let maxRefs: Int
    /// Shorter secrets are not scrubbed: replacing every "a" or "12" would garble all output.
    static let minimumSecretLength = 4
    static let redaction = "[hidden]"

    init(maxRefs: Int = 100_000) { self.maxRefs = maxRefs }

    func remember(_ scopes: [String: RefScope]) {
        state.withLock { s in
            if s.scopes.count + scopes.count > maxRefs { s.scopes.removeAll(keepingCapacity: true) }
            s.scopes.merge(scopes) { $1 }
        }
    }

    func scope(of ref: String) -> RefScope? { state.withLock { $0.scopes[ref] } }

    /// The snapshot filter for an app's diff reads: `showing`, or `all` once an app has shown
    /// that it does not mark its widgets showing.
    func diffFilter(app: String) -> String {
        state.withLock { $0.readAll.contains(app) } ? "all" : "showing"
    }

    func setDiffFilter(_ filter: String, app: String) {
        state.withLock { s in
            if filter == "all" { s.readAll.insert(app) } else { s.readAll.remove(app) }
        }
    }

    func rememberSecret(_ value: String) {
        guard value.count >= Self.minimumSecretLength else { return }
        state.withLock { _ = $0.secrets.insert(value) }
    }

    /// `text` with every remembered secret replaced.
    func scrub(_ text: String) -> String {
        let secrets = state.withLock { $0.secrets }
        // Longest first, so a secret containing another is hidden whole.
        return secrets.sorted { $0.count > $1.count }.reduce(text) { partial, secret in
            partial.replacing(secret, with: Self.redaction)
        }
    }
}
