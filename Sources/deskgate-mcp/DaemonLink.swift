import DeskgateAPI
import DeskgateClient
import JSONRPC
import Logging

/// The bridge's connection to deskgated: connected on first use, re-established after the
/// daemon goes away, and labelled with the MCP client's name.
actor DaemonLink {
    private let socketPath: String
    private let logger: Logger
    private var client: DeskgateClient?
    /// The MCP client's name from `initialize`, once known.
    private var clientName: String?
    /// The label the current connection has announced (to send it again when the name arrives).
    private var announcedLabel: String?

    init(socketPath: String, logger: Logger) {
        self.socketPath = socketPath
        self.logger = logger
    }

    /// The advisory label deskgated shows for this connection.
    static func label(clientName: String?) -> String {
        guard let clientName else { return "deskgate-mcp" }
        // Control characters in a name the MCP client chose would only confuse prompts and logs.
        // (Cf covers the bidi overrides.)
        let cleaned = String(String.UnicodeScalarView(clientName.unicodeScalars.filter {
            switch $0.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator: false
            default: true
            }
        }))
        let name = String(cleaned.prefix(200))
        return "deskgate-mcp (client: \(name.isEmpty ? "unnamed" : name))"
    }

    /// Records the MCP client's name and announces it on an open connection.
    func setClientName(_ name: String) async {
        clientName = name
        if let client, announcedLabel != Self.label(clientName: name) {
            await announce(on: client)
        }
    }

    /// Calls `method`. `retryable` calls (those that change nothing) are sent once more on a
    /// fresh connection if the daemon dropped the old one; actions are not, since they may
    /// already have happened.
    func call(_ method: String, _ params: JSONObject, timeout: Duration, retryable: Bool) async throws -> JSONValue {
        let (connection, fresh) = try await connection()
        do {
            return try await connection.call(method, .object(params), timeout: timeout)
        } catch DeskgateClientError.connectionClosed {
            drop(connection)
            guard retryable, !fresh else {
                throw DeskgateClientError.connectionClosed
            }
            logger.info("daemon connection was closed; reconnecting for \(method)")
            let (again, _) = try await self.connection()
            return try await again.call(method, .object(params), timeout: timeout)
        }
    }

    private func connection() async throws -> (DeskgateClient, fresh: Bool) {
        if let client { return (client, false) }
        let connected = try await DeskgateClient.connect(socketPath: socketPath)
        client = connected
        announcedLabel = nil
        logger.info("connected to deskgated at \(socketPath)")
        // Events are not used; draining the stream tells us when the connection ends.
        Task { [weak self] in
            for await _ in connected.incoming {}
            await self?.drop(connected)
        }
        await announce(on: connected)
        return (connected, true)
    }

    private func announce(on connection: DeskgateClient) async {
        let label = Self.label(clientName: clientName)
        do {
            _ = try await connection.call(SessionHello.name, ["client": .string(label)], timeout: .seconds(10))
            if client === connection { announcedLabel = label }
        } catch {
            logger.warning("session.hello failed: \(error)")
        }
    }

    private func drop(_ connection: DeskgateClient) {
        guard client === connection else { return }
        client = nil
        announcedLabel = nil
        connection.closeNow()
        logger.info("disconnected from deskgated")
    }
}
