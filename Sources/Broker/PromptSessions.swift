public import JSONRPC

/// The prompts being shown: each ends exactly once, by an answer from the helper connection it
/// was sent to, its timeout, the helper failing or leaving, or a cancel.
///
/// A state machine like ``PromptQueue``: calls return how a prompt ended (or nil when it had
/// ended already, or the answer came from another connection); the broker holds the waiting
/// continuations, timers and helper calls and acts on the result.
struct PromptSessions: Sendable {
    /// How a prompt ended.
    enum Ending: Sendable {
        case answer(JSONValue)
        case timeout
        case helperFailed(String)
        case cancelled

        /// For logs and the audit record.
        var label: String {
            switch self {
            case .answer(let value): value["choice"]?.stringValue.map { "answered \($0)" } ?? "malformed answer"
            case .timeout: "timeout"
            case .helperFailed: "helper failed"
            case .cancelled: "cancelled"
            }
        }
    }

    struct Session: Sendable {
        var id: String
        var token: UInt64
        /// The helper connection the prompt was sent to: only its answer counts.
        var helperConnection: UInt64
    }

    private var sessions: [String: Session] = [:]

    mutating func start(_ session: Session) { sessions[session.id] = session }

    /// Ends a prompt. An answer counts only from the connection the prompt was sent to (nil:
    /// the outcome is not an answer, e.g. a timeout). Returns the session that ended, or nil.
    mutating func end(_ id: String, _ ending: Ending, from connection: UInt64?) -> Session? {
        guard let session = sessions[id] else { return nil }
        if case .answer = ending, session.helperConnection != connection { return nil }
        return sessions.removeValue(forKey: id)
    }

    /// The prompts sent to a helper connection (it went away: each ends as a helper failure).
    func shown(to connection: UInt64) -> [String] {
        sessions.values.filter { $0.helperConnection == connection }.map(\.id).sorted()
    }

    var count: Int { sessions.count }
}
