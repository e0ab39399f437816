import DBus
import Synchronization

/// Calls to apps: over the app's peer-to-peer link when it has one, else through the bus; a
/// hung app fails at once; failures become ``AccessibilityError``s (``failure(for:app:interface:deadline:)``).
struct AppCalls: Sendable {
    let bus: DBusConnection
    let config: AccessibilityConfig
    let registry: AppRegistry
    let hangs: HangMonitor

    /// Calls a method of an app's object, mapping failures to the API's errors and keeping the
    /// app's hung state.
    func call(_ app: AppHandle, _ path: String, _ interface: String, _ member: String, _ args: [DBusValue] = [],
              timeout: Duration) async throws(AccessibilityError) -> [DBusValue]
    {
        try failFastIfHung(app)
        do {
            if let peer = app.peer, peer.isConnected {
                return try await peer.call(destination: nil, path: path, interface: interface, member: member,
                                           args: args, timeout: timeout)
            }
            return try await bus.call(destination: app.id, path: path, interface: interface, member: member,
                                      args: args, timeout: timeout)
        } catch {
            throw await failure(for: error, app: app, interface: interface)
        }
    }

    /// Like ``call(_:_:_:_:_:timeout:)``, decoding the reply on the connection's thread.
    func callDecoding<T: Sendable>(_ app: AppHandle, _ path: String, _ interface: String, _ member: String,
                                   _ args: [DBusValue] = [], timeout: Duration, deadline: Deadline? = nil,
                                   decode: @escaping @Sendable (inout DBusReader) -> T) async throws(AccessibilityError) -> T
    {
        try failFastIfHung(app)
        do {
            if let peer = app.peer, peer.isConnected {
                return try await peer.call(destination: nil, path: path, interface: interface, member: member,
                                           args: args, timeout: timeout, decode: decode)
            }
            return try await bus.call(destination: app.id, path: path, interface: interface, member: member,
                                      args: args, timeout: timeout, decode: decode)
        } catch {
            throw await failure(for: error, app: app, interface: interface, deadline: deadline)
        }
    }

    /// Reads a property with `Properties.Get` (never `GetAll`: Qt crashes on it).
    func property(_ app: AppHandle, _ path: String, _ interface: String, _ name: String,
                  timeout: Duration? = nil) async throws(AccessibilityError) -> DBusValue
    {
        let reply = try await call(app, path, Atspi.properties, "Get", [.string(interface), .string(name)],
                                   timeout: timeout ?? config.readTimeout)
        guard let value = reply.first else { throw .unexpected("empty property reply") }
        return value.unwrapped
    }

    /// Sends calls to one app at once. A timeout marks the app hung and fails the whole batch
    /// (-32004); an app that has gone fails it with -32002; other per-call errors are returned.
    func batch(_ app: AppHandle, _ calls: [(path: String, interface: String, member: String, args: [DBusValue])],
               timeout: Duration, deadline: Deadline? = nil) async throws(AccessibilityError) -> [Result<[DBusValue], DBusError>]
    {
        // In chunks: an app answers one call after another, so a per-call timeout only means
        // something if the calls ahead of it in the queue can be answered within it.
        var results: [Result<[DBusValue], DBusError>] = []
        results.reserveCapacity(calls.count)
        var start = 0
        while start < calls.count {
            try failFastIfHung(app)
            let chunk = calls[start..<min(start + Self.batchChunk, calls.count)]
            let chunkResults: [Result<[DBusValue], DBusError>]
            if let peer = app.peer, peer.isConnected {
                chunkResults = await peer.callBatch(chunk.map {
                    DBusCall(destination: nil, path: $0.path, interface: $0.interface, member: $0.member, args: $0.args)
                }, timeout: timeout)
            } else {
                chunkResults = await bus.callBatch(chunk.map {
                    DBusCall(destination: app.id, path: $0.path, interface: $0.interface, member: $0.member,
                             args: $0.args)
                }, timeout: timeout)
            }
            for result in chunkResults {
                if case .failure(let error) = result, error.isTimeout || error.isPeerGone {
                    throw await failure(for: error, app: app, interface: "", deadline: deadline)
                }
            }
            results += chunkResults
            start += Self.batchChunk
        }
        return results
    }

    /// Calls in flight per app at once.
    static let batchChunk = 512

    private func failFastIfHung(_ app: AppHandle) throws(AccessibilityError) {
        if app.isHung { throw .notResponding(app: app.id, name: app.name) }
    }

}
