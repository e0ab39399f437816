#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Whether a desktop (display plus session or accessibility bus) is available to the tests.
public enum DesktopEnvironment {
    public static let environment = ProcessInfo.processInfo.environment
    public static var available: Bool {
        environment["DISPLAY"] != nil && (environment["AT_SPI_BUS_ADDRESS"] != nil || environment["DBUS_SESSION_BUS_ADDRESS"] != nil)
    }
    /// Set by scripts/headless-desktop.sh: desktop tests must run there, never skip.
    public static var required: Bool { environment["DESKGATE_REQUIRE_DESKTOP"] == "1" }
    public static var enabled: Bool { available || required }

    public static var fixturesDirectory: String {
        environment["DESKGATE_FIXTURES_DIR"] ?? BuiltProducts.packageRoot + "/Tests/Fixtures"
    }
}

/// A fixture app (Tests/Fixtures/KIND_app.py) started by a test, with its stdout lines.
public final class FixtureProcess: Sendable {
    public let name: String
    public let process: Process
    private let lines = LineBuffer()

    private let detachedPID = Atomic<Int32>(0)

    /// The app's pid (for a detached app: once ``adopt(pid:)`` has been told it).
    public var pid: Int32 {
        let adopted = detachedPID.load(ordering: .relaxed)
        return adopted != 0 ? adopted : process.processIdentifier
    }

    /// - Parameter detached: start the app outside this process's tree (`setsid -f`). It stays
    ///   in this process's cgroup, so it does not make the app reachable while this process is
    ///   the prompt helper: apps the helper may have started are off limits (run the helper
    ///   in a ``TestCgroup`` of its own instead).
    /// - Parameter arguments: more options for the fixture (e.g. `["--title", "T"]`).
    public init(_ kind: String = "gtk3", rows: Int = 0, name: String? = nil, arguments: [String] = [],
                detached: Bool = false) throws {
        self.name = name ?? "deskgate-e2e-\(kind)-\(UInt32.random(in: 0...UInt32.max))"
        let command = ["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/\(kind)_app.py", "--rows", String(rows),
                       "--name", self.name] + arguments
        process = try Self.start(detached ? ["/usr/bin/setsid", "-f"] + command : command, into: lines)
    }

    /// Runs another script of `Tests/Fixtures` (e.g. `event_stream.py`) with `/usr/bin/python3`,
    /// collecting its stdout lines like an app's.
    public init(script: String, arguments: [String]) throws {
        name = script
        process = try Self.start(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/" + script] + arguments,
                                 into: lines)
    }

    private static func start(_ command: [String], into lines: LineBuffer) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = pipe.fileHandleForReading
        // The reader holds only the buffer, so dropping the FixtureProcess still ends the app.
        Thread.detachNewThread { [lines] in
            var buffer = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                buffer.append(data)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    lines.append(line)
                }
            }
        }
        return process
    }

    public var output: [String] { lines.all }

    /// Waits until a line starting with `prefix` has been printed.
    public func waitForLine(_ prefix: String, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if lines.all.contains(where: { $0.hasPrefix(prefix) }) { return true }
            usleep(20_000)
        }
        return false
    }

    /// Records the real pid of a detached app (from `apps.list`, which takes it from the bus).
    public func adopt(pid: Int32) { detachedPID.store(pid, ordering: .relaxed) }

    public func terminate() {
        let adopted = detachedPID.load(ordering: .relaxed)
        if adopted != 0 {
            kill(adopted, SIGCONT)
            kill(adopted, SIGKILL)
            detachedPID.store(0, ordering: .relaxed)
        }
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGCONT)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { terminate() }
}

/// Lines printed by a fixture, shared with its reader thread.
final class LineBuffer: Sendable {
    private let state = Mutex<[String]>([])
    func append(_ line: String) { state.withLock { $0.append(line) } }
    var all: [String] { state.withLock { $0 } }
}
