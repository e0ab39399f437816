import DeskgateAPI
import DeskgateClient
import JSONRPC
import Logging

/// The bridge's connection to deskgated: connected on first use, re-established after the
/// daemon goes away, and labelled with the MCP client's name before any other request.
actor DaemonLink {
    private let socketPath: String
    private let logger: Logger
    /// The connection being opened or open; every caller waits for the same one, so concurrent
    /// first calls share a connection and none is sent before `session.hello`.
    private var opening: Task<DeskgateClient, any Error>?
    private var client: DeskgateClient?
    /// The MCP client's name from `initialize`, once known.
    private var clientName: String?
    private var announcedLabel: String?

    init(socketPath: String, logger: Logger) {
        self.socketPath = socketPath
        self.logger = logger
    }

    /// The advisory label deskgated shows for this connection.
    static func label(clientName: String?) -> String {
        guard let clientName else { return "deskgate-mcp" }
        // Control and format characters (bidi overrides) in a name the MCP client chose would
        // only confuse prompts and logs.
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
        let connection = try await connection()
        do {
            return try await connection.call(method, .object(params), timeout: timeout)
        } catch DeskgateClientError.connectionClosed {
            drop(connection)
            guard retryable else { throw DeskgateClientError.connectionClosed }
            logger.info("daemon connection was closed; reconnecting for \(method)")
            return try await self.connection().call(method, .object(params), timeout: timeout)
        }
    }

    private func connection() async throws -> DeskgateClient {
        let task: Task<DeskgateClient, any Error>
        if let opening {
            task = opening
        } else {
            task = Task { try await self.open() }
            opening = task
        }
        do {
            return try await task.value
        } catch {
            if opening == task { opening = nil }
            throw error
        }
    }

    private func open() async throws -> DeskgateClient {
        let connected = try DeskgateClient.connectSync(socketPath: socketPath)
        client = connected
        announcedLabel = nil
        logger.info("connected to deskgated at \(socketPath)")
        // Events are not used; the stream ending tells us the connection is gone.
        Task { [weak self] in
            for await _ in connected.incoming {}
            await self?.drop(connected)
        }
        await announce(on: connected)
        return connected
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
        opening = nil
        announcedLabel = nil
        connection.closeNow()
        logger.info("disconnected from deskgated")
    }
}
