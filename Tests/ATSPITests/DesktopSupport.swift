import ATSPI
import Daemon
import Foundation
import JSONRPC
import Logging
import Synchronization
import Testing

/// Whether the AT-SPI suites can run: a display and a session or accessibility bus.
enum Desktop {
    static let environment = ProcessInfo.processInfo.environment
    static var available: Bool {
        environment["DISPLAY"] != nil
            && (environment["AT_SPI_BUS_ADDRESS"] != nil || environment["DBUS_SESSION_BUS_ADDRESS"] != nil)
    }
    /// Set by the headless harness: missing pieces are failures, not skips.
    static var required: Bool { environment["DESKGATE_REQUIRE_DESKTOP"] == "1" }
    static var enabled: Bool { available || required }
    static let reason: Comment = "no desktop session (DISPLAY and a session or AT-SPI bus); run the AT-SPI suites under scripts/headless-desktop.sh, or set DESKGATE_REQUIRE_DESKTOP=1 to make this a failure"

    static func requireAvailable() throws {
        if !available {
            Issue.record("DESKGATE_REQUIRE_DESKTOP=1 but there is no desktop session: DISPLAY=\(environment["DISPLAY"] ?? "unset"), AT_SPI_BUS_ADDRESS=\(environment["AT_SPI_BUS_ADDRESS"] ?? "unset"), DBUS_SESSION_BUS_ADDRESS=\(environment["DBUS_SESSION_BUS_ADDRESS"] ?? "unset")")
            throw CancellationError()
        }
    }

    static var fixturesDirectory: String {
        if let dir = environment["DESKGATE_FIXTURES_DIR"] { return dir }
        // Tests/ATSPITests/DesktopSupport.swift -> Tests/Fixtures
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    static var preStartedApps: [String] {
        (environment["DESKGATE_FIXTURE_APPS"] ?? "").split(separator: " ").map(String.init)
    }

    /// One service shared by the suites (they run in parallel, which also exercises concurrency).
    /// IsEnabled is left alone here; one test checks setting and restoring it.
    static let shared = SharedService()

    /// Generous timeouts: the suites start many apps at once on small CI machines, where a
    /// loaded app can take seconds to answer; the frozen-app tests use their own short ones.
    static func testConfig() -> AccessibilityConfig {
        AccessibilityConfig(readTimeout: .seconds(10), bulkCallTimeout: .seconds(30), actionTimeout: .seconds(10),
                            requestDeadline: .seconds(60), enableAccessibility: false)
    }
}

final class SharedService: Sendable {
    private let task = Mutex<Task<AccessibilityService, any Error>?>(nil)

    func get() async throws -> AccessibilityService {
        try Desktop.requireAvailable()
        let task = self.task.withLock { t in
            if let t { return t }
            let created = Task {
                try await AccessibilityService.start(config: Desktop.testConfig(), logger: Logger(label: "atspi-tests"))
            }
            t = created
            return created
        }
        return try await task.value
    }
}

/// A fixture app started by a test, with its stdout lines.
final class FixtureApp: Sendable {
    let name: String
    let process: Process
    private let lines = Mutex<[String]>([])

    var pid: Int32 { process.processIdentifier }

    private init(name: String, process: Process) {
        self.name = name
        self.process = process
    }

    /// Starts `Tests/Fixtures/KIND_app.py` with a unique name and waits until it is ready and
    /// registered with the AT-SPI registry.
    static func launch(_ kind: String, rows: Int = 0, name: String? = nil, arguments: [String] = [],
                       service: AccessibilityService) async throws
        -> FixtureApp
    {
        let appName = name ?? "deskgate-test-\(kind)-\(UInt32.random(in: 0...UInt32.max))"
        let script = Desktop.fixturesDirectory + "/\(kind)_app.py"
        guard FileManager.default.fileExists(atPath: script) else {
            Issue.record("fixture app missing: \(script)")
            throw CancellationError()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script, "--rows", String(rows), "--name", appName] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let app = FixtureApp(name: appName, process: process)
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread {
            var buffer = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                buffer.append(data)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    app.lines.withLock { $0.append(line) }
                }
            }
        }
        guard await app.waitForLine("ready", timeout: .seconds(30)) else {
            app.terminate()
            Issue.record("fixture \(appName) did not become ready")
            throw CancellationError()
        }
        let clock = ContinuousClock()
        let end = clock.now + .seconds(20)
        while clock.now < end {
            if try await service.listApps().contains(where: { $0.name == appName && $0.pid == app.pid }) { return app }
            try await Task.sleep(for: .milliseconds(100))
        }
        app.terminate()
        Issue.record("fixture \(appName) never registered with the AT-SPI registry")
        throw CancellationError()
    }

    var output: [String] { lines.withLock { $0 } }

    /// Waits until a line starting with `prefix` has been printed.
    func waitForLine(_ prefix: String, timeout: Duration = .seconds(15)) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if lines.withLock({ $0.contains { $0.hasPrefix(prefix) } }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func signal(_ number: Int32) { kill(pid, number) }

    func terminate() {
        guard process.isRunning else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    deinit { terminate() }
}

/// Helpers to pick nodes out of snapshot results.
extension JSONValue {
    var nodes: [JSONValue] { self["nodes"]?.arrayValue ?? [] }

    func node(role: String, name: String) -> JSONValue? {
        nodes.first { $0["role"]?.stringValue == role && $0["name"]?.stringValue == name }
    }

    var ref: String? { self["ref"]?.stringValue }
    var states: [String] { (self["states"]?.arrayValue ?? []).compactMap(\.stringValue) }
}

/// Runs a throwing call and returns the RPC error it threw (or records that it did not).
func rpcError(_ body: () async throws -> Any) async -> RPCError? {
    do {
        _ = try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch let error as any RPCErrorConvertible {
        return error.rpcError
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}
