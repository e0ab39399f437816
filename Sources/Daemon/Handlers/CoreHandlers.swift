import DeskgateAPI
import JSONRPC

/// Facts `daemon.info` reports; filled in by the service as subsystems start.
public struct DaemonFacts: Sendable {
    public var version: String
    public var pid: Int32
    public var socket: String
    public var startedAt: ContinuousClock.Instant
    public var clients: @Sendable () -> Int
    /// Extra top-level fields from subsystems (broker, audit, accessibility status).
    public var extra: @Sendable () -> JSONObject
}

/// Methods every daemon serves, never gated: ping, info, session, discovery.
enum CoreHandlers {
    static func register(into table: inout MethodTable, facts: DaemonFacts, discover: @escaping @Sendable () -> JSONValue) {
        table.register(DaemonPing.self) { _, _ in "pong" }

        table.register(DaemonInfo.self) { _, _ in
            var object: JSONObject = [
                "version": .string(facts.version),
                "pid": .int(Int64(facts.pid)),
                "uptime_s": .double(Self.seconds(ContinuousClock.now - facts.startedAt)),
                "socket": .string(facts.socket),
                "clients": JSONValue(facts.clients()),
            ]
            for member in facts.extra() { object[member.key] = member.value }
            return .object(object)
        }

        table.register(SessionHello.self) { params, context in
            let label = try params.string("client")
            context.session.label = label
            return ["label": .string(label), "note": "advisory: shown apart from your verified identity, never used for decisions"]
        }

        table.register(SessionWhoami.self) { _, context in
            context.session.identityJSON
        }

        table.register(RPCDiscover.self) { _, _ in discover() }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return ((Double(seconds) + Double(attoseconds) / 1e18) * 1000).rounded() / 1000
    }
}
