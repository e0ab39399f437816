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
        path = String(cString: template)
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
                wrapper: [String] = [], waitForSocket: Bool = true) throws
    {
        directory = TempDirectory("deskgated")
        self.socketPath = socketPath ?? directory.file("run/deskgate.sock")
        stateDirectory = directory.file("state")
        configDirectory = directory.file("config")
        systemPolicyDirectory = directory.file("etc-policy.d")
        logPath = directory.file("daemon.log")
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: systemPolicyDirectory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let daemonArgs = ["--socket", self.socketPath, "--state-dir", stateDirectory, "--config-dir", configDirectory,
                          "--system-policy-dir", systemPolicyDirectory, "--log-level", "debug"] + extra
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
