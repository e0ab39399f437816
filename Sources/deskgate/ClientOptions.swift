#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DeskgateAPI
import DeskgateClient
import JSONRPC

/// Options every command that talks to the daemon takes.
struct ClientOptions: ParsableArguments {
    @Option(help: "Daemon socket path (default: $DESKGATE_SOCKET or the XDG runtime socket).")
    var socket: String?

    @Flag(help: "Print the raw JSON result (for scripts).")
    var json = false

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
