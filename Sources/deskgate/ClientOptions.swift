#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DeskgateAPI
import DeskgateClient
import JSONRPC

/// `--json`, which every command takes, also those that never talk to the daemon.
///
/// The root command declares it (through ``ClientOptions``) and so parses it wherever it stands:
/// before or after the subcommand. A subcommand that declares it again gets that same parsed
/// value (swift-argument-parser hands a group type already decoded for a parent to the child),
/// so it is defined once, here, and a command must not declare a `--json` flag of its own: the
/// root would take it first.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the raw JSON result (for scripts).")
    var json = false
}

/// The client options: `--socket` and `--json`, for every command that talks to the daemon.
///
/// Like ``OutputOptions`` they are parsed by the root command wherever they stand, so
/// `deskgate --socket P apps` and `deskgate apps --socket P` are the same. Given twice, the
/// last one wins: the one after the subcommand. Commands that do not talk to the daemon ignore
/// `--socket`.
struct ClientOptions: ParsableArguments {
    @Option(help: "Daemon socket path (default: $DESKGATE_SOCKET or the XDG runtime socket).", completion: .file())
    var socket: String?

    @OptionGroup var output: OutputOptions

    /// Whether to print raw JSON.
    var json: Bool { output.json }

    /// Calls one method and returns its result; on failure prints the error and exits non-zero.
    func call(_ method: String, _ params: JSONValue? = nil) async throws -> JSONValue {
        do {
            let client = try await DeskgateClient.connect(socketPath: socket)
            defer { client.closeNow() }
            return try await client.call(method, params)
        } catch {
            throw CLIFailure(error)
        }
    }

    /// Connects for commands that keep the connection (watch).
    func connect() async throws -> DeskgateClient {
        do {
            return try await DeskgateClient.connect(socketPath: socket)
        } catch {
            throw CLIFailure(error)
        }
    }

    /// Prints a result: JSON with --json, else the readable form.
    func emit(_ value: JSONValue, readable: (JSONValue) -> String) {
        if json {
            print(JSONWriter.string(value))
        } else {
            let text = readable(value)
            if !text.isEmpty { print(text) }
        }
    }
}

/// A failed call: its message goes to stderr and the command exits 1 (2 for a denial).
struct CLIFailure: Error, CustomStringConvertible {
    let underlying: any Error
    init(_ error: any Error) { underlying = error }
    var description: String { String(describing: underlying) }
}

extension CLIFailure {
    /// Prints the failure in the form a person or a script expects and returns the exit code.
    func report() -> ExitCode {
        if let rpc = underlying as? RPCError {
            var line = "deskgate: \(rpc.message) (error \(rpc.code.rawValue))"
            if let reason = rpc.data?["reason"]?.stringValue { line += " [reason: \(reason)]" }
            FileHandleStderr.write(line + "\n")
            return ExitCode(rpc.code == .denied ? 2 : 1)
        }
        FileHandleStderr.write("deskgate: \(underlying)\n")
        return ExitCode(1)
    }
}

enum FileHandleStderr {
    static func write(_ s: String) {
        s.utf8CString.withUnsafeBufferPointer { _ = Glibc.write(2, $0.baseAddress, $0.count - 1) }
    }
}

/// Runs a command body, turning failures into their message and exit code.
func runReporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as CLIFailure {
        throw failure.report()
    }
}
