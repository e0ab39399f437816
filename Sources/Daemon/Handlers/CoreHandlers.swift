import DeskgateAPI
import JSONRPC
import Synchronization

/// Facts `daemon.info` reports; filled in by the service as subsystems start.
public struct DaemonFacts: Sendable {
    public var version: String
    public var pid: Int32
    public var socket: String
    public var startedAt: ContinuousClock.Instant
    public var clients: @Sendable () -> Int
    /// Extra top-level fields from subsystems (broker, audit, accessibility status).
    public var extra: @Sendable () async -> JSONObject
}

/// Methods every daemon serves, never gated: ping, info, session, discovery.
enum CoreHandlers {
    static func register(into table: inout MethodTable, facts: DaemonFacts, discover: @escaping @Sendable () -> JSONValue) {
        table.registerInline(DaemonPing.self) { _, _ in "pong" }

        table.register(DaemonInfo.self) { _, _ in
            var object: JSONObject = [
                "version": .string(facts.version),
                "build": DeskgateAPI.buildJSON,
                "pid": .int(Int64(facts.pid)),
                "uptime_s": .double(Self.seconds(ContinuousClock.now - facts.startedAt)),
                "socket": .string(facts.socket),
                "clients": JSONValue(facts.clients()),
            ]
            for member in await facts.extra() { object[member.key] = member.value }
            return .object(object)
        }

        table.registerInline(SessionHello.self) { params, context in
            let label = params.client
            context.session.label = label
            return ["label": .string(label), "note": "advisory: shown apart from your verified identity, never used for decisions"]
        }

        table.registerInline(SessionWhoami.self) { _, context in
            guard case .object(var object) = context.session.identityJSON else { return context.session.identityJSON }
            object["pidfd"] = .string(context.session.identity.pidfdSource.rawValue)
            return .object(object)
        }

        table.registerInline(RPCDiscover.self) { _, _ in discover() }
    }

    /// Test-only methods (`--enable-test-methods`); never registered in normal operation.
    static func registerTestMethods(into table: inout MethodTable) {
        let running = Atomic<Int>(0)
        let maxRunning = Atomic<Int>(0)
        table.register(DebugSleep.self) { params, _ in
            let ms = params.ms
            let now = running.add(1, ordering: .relaxed).newValue
            defer { running.subtract(1, ordering: .relaxed) }
            var seen = maxRunning.load(ordering: .relaxed)
            while now > seen {
                let (exchanged, original) = maxRunning.compareExchange(expected: seen, desired: now, ordering: .relaxed)
                if exchanged { break }
                seen = original
            }
            try await GlobalExecutor.sleep(for: .milliseconds(ms))
            return ["slept_ms": JSONValue(ms), "max_concurrent": JSONValue(maxRunning.load(ordering: .relaxed))]
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return ((Double(seconds) + Double(attoseconds) / 1e18) * 1000).rounded() / 1000
    }
}
