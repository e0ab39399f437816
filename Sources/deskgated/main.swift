#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import ATSPI
import Daemon
import DeskgateAPI
import Logging

/// deskgated: the deskgate daemon. Wires options into a ``DaemonService`` and runs it.
@main
struct Deskgated: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deskgated",
        abstract: "Serve gated, audited access to desktop apps over a JSON-RPC Unix socket.",
        version: DeskgateAPI.versionText)

    @Option(help: "Socket path (default: $XDG_RUNTIME_DIR/deskgate/deskgate.sock).")
    var socket: String?

    @Option(help: "State directory for grants and the audit log (default: $XDG_STATE_HOME/deskgate).")
    var stateDir: String?

    @Option(help: "User configuration directory (default: $XDG_CONFIG_HOME/deskgate).")
    var configDir: String?

    @Option(help: "Admin policy directory (default: /etc/deskgate/policy.d).")
    var systemPolicyDir: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Largest accepted message in bytes.")
    var maxMessageBytes: Int = 1 << 20

    @Option(help: "Requests served at once per connection before reading pauses.")
    var maxInFlight: Int = 64

    @Option(help: "Unsent reply bytes per connection before it is closed.")
    var maxReplyBuffer: Int = 64 << 20

    @Option(help: "Connections one client process may hold.")
    var maxConnectionsPerProcess: Int = 64

    @Option(help: "Connections all clients may hold; past it, --reserve-connections more may only revoke, pause, register the prompt helper and ping.")
    var maxConnections: Int = 1024

    @Option(help: "Connections accepted past --max-connections for the calls that keep the person in control.")
    var reserveConnections: Int = 32

    @Option(help: "Bytes of unfinished lines across all connections; past it, a connection holding a large one is closed.")
    var partialLineBudget: Int = 64 << 20

    @Option(help: "Seconds a permission prompt may stay unanswered before it counts as a denial.")
    var promptTimeout: Double = 60

    @Option(help: "Per-call timeout of small AT-SPI reads, in milliseconds.")
    var readTimeoutMs: Int = 500

    @Option(help: "Per-call timeout of AT-SPI actions, in milliseconds.")
    var actionTimeoutMs: Int = 2000

    @Option(help: "Per-call timeout of bulk AT-SPI reads (GetItems, GetMatches), in milliseconds.")
    var bulkTimeoutMs: Int = 5000

    @Option(help: "Overall deadline of one AT-SPI request, in milliseconds.")
    var requestDeadlineMs: Int = 10000

    @Flag(help: "Enable memory-deny-write-execute for the daemon process (PR_SET_MDWE).")
    var mdwe = false

    @Flag(help: "Do not set org.a11y.Status.IsEnabled at start (apps that need it will not expose their trees).")
    var noEnableAccessibility = false

    @Flag(help: .hidden)
    var forcePidfdOpen = false

    @Flag(help: .hidden)
    var enableTestMethods = false

    /// Moves Swift Concurrency onto NIO's event loops before any task runs (see ``GlobalExecutor``:
    /// libdispatch's pool would wake the idle daemon every second), then parses and runs.
    @MainActor
    static func main() async {
        MemoryTuning.configure()
        GlobalExecutor.install()
        await main(nil)
    }

    mutating func run() async throws {
        let environment = currentEnvironment()
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("unknown log level \(logLevel)")
        }
        let logger = Logger(label: "deskgated") { label in
            StderrLogHandler(label: label, level: level, environment: environment)
        }
        var options = DaemonOptions(environment: environment)
        options.socketPath = socket
        if let stateDir { options.stateDirectory = stateDir }
        if let configDir { options.configDirectory = configDir }
        if let systemPolicyDir { options.systemPolicyDirectory = systemPolicyDir }
        options.limits.maxMessageBytes = maxMessageBytes
        options.limits.maxInFlight = maxInFlight
        options.forcePidfdOpen = forcePidfdOpen
        options.enableTestMethods = enableTestMethods
        options.memoryDenyWriteExecute = mdwe
        options.limits.maxReplyBuffer = maxReplyBuffer
        options.limits.maxConnectionsPerProcess = max(1, maxConnectionsPerProcess)
        options.limits.maxConnections = max(1, maxConnections)
        options.limits.reserveConnections = max(1, reserveConnections)
        options.limits.partialLineBudget = max(options.limits.maxMessageBytes, partialLineBudget)
        options.promptTimeout = .milliseconds(Int64(promptTimeout * 1000))
        options.accessibility.readTimeout = .milliseconds(readTimeoutMs)
        options.accessibility.actionTimeout = .milliseconds(actionTimeoutMs)
        options.accessibility.bulkCallTimeout = .milliseconds(bulkTimeoutMs)
        options.accessibility.requestDeadline = .milliseconds(requestDeadlineMs)
        options.accessibility.enableAccessibility = !noEnableAccessibility
        let service = DaemonService(options: options, logger: logger)
        do {
            try await service.run()
        } catch let error as ListenError {
            logger.critical("\(error.description)")
            throw ExitCode(1)
        }
    }
}
