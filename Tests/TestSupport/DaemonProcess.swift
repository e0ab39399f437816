#if canImport(Glibc)
import Glibc
#endif
import Foundation
public import DeskgateClient
public import JSONRPC

/// Paths of the built products next to the running test bundle.
public enum BuiltProducts {
    /// `.build/<triple>/debug` (the directory of the test runner).
    public static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The runner may live inside a .xctest bundle directory.
        while url.path.contains(".xctest") { url = url.deletingLastPathComponent() }
        return url.path
    }

    public static func path(_ name: String) -> String { directory + "/" + name }

    /// The package root (two levels above `.build/<triple>/<config>`).
    public static var packageRoot: String {
        var url = URL(fileURLWithPath: directory)
        while url.lastPathComponent != ".build", url.path != "/" { url = url.deletingLastPathComponent() }
        return url.deletingLastPathComponent().path
    }
}

/// A fresh private directory under /tmp, removed by ``remove()``.
public struct TempDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "deskgate-test") {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A `deskgated` process started for one test, with its own socket and state.
public final class DaemonProcess: @unchecked Sendable {
    public let process: Process
    public let directory: TempDirectory
    public let socketPath: String
    public let stateDirectory: String
    public let configDirectory: String
    public let systemPolicyDirectory: String
    public let logPath: String

    /// Starts the daemon and waits until its socket accepts connections.
    public init(arguments extra: [String] = [], environment: [String: String] = [:], socketPath: String? = nil,
                wrapper: [String] = [], waitForSocket: Bool = true, userPolicy: String? = nil, adminPolicy: String? = nil) throws
    {
        directory = TempDirectory("deskgated")
        self.socketPath = socketPath ?? directory.file("run/deskgate.sock")
        stateDirectory = directory.file("state")
        configDirectory = directory.file("config")
        systemPolicyDirectory = directory.file("etc-policy.d")
        logPath = directory.file("daemon.log")
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: systemPolicyDirectory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        if let userPolicy { try userPolicy.write(toFile: configDirectory + "/policy.toml", atomically: true, encoding: .utf8) }
        if let adminPolicy { try adminPolicy.write(toFile: systemPolicyDirectory + "/00-admin.toml", atomically: true, encoding: .utf8) }
        // Tests share one accessibility bus and run in parallel: only the AT-SPI tests that check
        // IsEnabled handling touch it (the harness's apps expose their trees regardless).
        let daemonArgs = ["--socket", self.socketPath, "--state-dir", stateDirectory, "--config-dir", configDirectory,
                          "--system-policy-dir", systemPolicyDirectory, "--log-level", "debug", "--no-enable-accessibility"] + extra
        process = Process()
        if wrapper.isEmpty {
            process.executableURL = URL(fileURLWithPath: BuiltProducts.path("deskgated"))
            process.arguments = daemonArgs
        } else {
            process.executableURL = URL(fileURLWithPath: wrapper[0])
            process.arguments = Array(wrapper.dropFirst()) + [BuiltProducts.path("deskgated")] + daemonArgs
        }
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "LISTEN_FDS")
        env.removeValue(forKey: "LISTEN_PID")
        env.removeValue(forKey: "WATCHDOG_USEC")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        try process.run()
        if waitForSocket { try self.waitForSocket() }
    }

    public func waitForSocket(timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let connection = try? RawConnection(path: socketPath) {
                connection.close()
                return
            }
            if !process.isRunning {
                throw TestFailure("deskgated exited early (status \(process.terminationStatus)): \(log)")
            }
            usleep(20_000)
        }
        throw TestFailure("deskgated did not listen on \(socketPath) within \(timeout) s: \(log)")
    }

    /// Every audit record written so far, parsed, in file order.
    /// `stateDirectory`: another one than the test harness's, when the daemon was given `--state-dir`.
    public func auditRecords(stateDirectory: String? = nil) -> [JSONValue] {
        let dir = (stateDirectory ?? self.stateDirectory) + "/audit"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
        var records: [JSONValue] = []
        for file in files {
            let text = (try? String(contentsOfFile: dir + "/" + file, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                if let value = try? JSONParser.parse(String(line)) { records.append(value) }
            }
        }
        return records
    }

    /// Every byte under the state directory and the daemon log, for canary searches.
    public func allWrittenBytes() -> [UInt8] {
        var bytes = Array(log.utf8)
        if let enumerator = FileManager.default.enumerator(atPath: stateDirectory) {
            for case let file as String in enumerator {
                if let data = FileManager.default.contents(atPath: stateDirectory + "/" + file) { bytes += Array(data) }
            }
        }
        return bytes
    }

    /// Calls a method from a separate python3 process (its own pid and exe), started through
    /// `wrapper` if given (e.g. ``TestCgroup/wrapper``, to run it in a cgroup of its own).
    public func callFromPython(_ method: String, _ params: JSONValue? = nil, execSocat: Bool = false,
                               wrapper: [String] = []) throws -> JSONValue {
        let process = Process()
        let command = wrapper + ["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/rpc_call.py"]
        process.executableURL = URL(fileURLWithPath: command[0])
        var arguments = Array(command.dropFirst())
        if execSocat { arguments.append("--exec-socat") }
        arguments += [socketPath, method]
        if let params { arguments.append(JSONWriter.string(params)) }
        process.arguments = arguments
        let pipe = Pipe()
        let errors = Pipe()
        process.standardOutput = pipe
        process.standardError = errors
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty {
            // No reply: say why, so a failing expectation shows the client's own error.
            return ["no_reply": .string(String(decoding: errorData, as: UTF8.self)), "status": JSONValue(Int(process.terminationStatus))]
        }
        return try JSONParser.parse(text)
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    public var pid: Int32 { process.processIdentifier }

    public func client() async throws -> DeskgateClient { try await DeskgateClient.connect(socketPath: socketPath) }

    public func raw() throws -> RawConnection { try RawConnection(path: socketPath) }

    /// Sends a signal and waits for exit; returns the exit status.
    @discardableResult
    public func stop(signal sig: Int32 = SIGTERM, timeout: Double = 15) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, sig) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        directory.remove()
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
