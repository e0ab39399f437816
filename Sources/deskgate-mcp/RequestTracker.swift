import JSONRPC
import Synchronization

/// Requests the MCP client has sent that have no response yet, so that on end of input the
/// server can answer everything it accepted before exiting (the SDK stops at EOF).
final class RequestTracker: Sendable {
    private let pending = Mutex(Set<JSONValue>())

    var count: Int { pending.withLock { $0.count } }

    /// Notes an incoming frame (a request, notification or batch).
    func received(_ frame: JSONValue) {
        for message in frame.arrayValue ?? [frame] {
            guard let method = message["method"]?.stringValue else { continue }
            if let id = message["id"] {
                pending.withLock { _ = $0.insert(id) }
            } else if method == "notifications/cancelled", let id = message["params"]?["requestId"] {
                // A cancelled request gets no response.
                finish(id)
            }
        }
    }

    /// Notes an outgoing frame; responses settle their requests.
    func sent(_ frame: JSONValue) {
        for message in frame.arrayValue ?? [frame] where message["method"] == nil {
            if let id = message["id"] { finish(id) }
        }
    }

    private func finish(_ id: JSONValue) {
        pending.withLock { _ = $0.remove(id) }
    }
}
