import CLinux
import Foundation
import JSONRPC
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A one-connection NDJSON server standing in for deskgated, to drive the real deskgate-prompt.
final class FakeDaemonSocket: @unchecked Sendable {
    let path: String
    private let listener: Int32
    private var connection: Int32 = -1
    private var buffer: [UInt8] = []

    init(path: String) throws {
        self.path = path
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard deskgate_unix_bind(listener, path) == 0, listen(listener, 1) == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit {
        close(listener)
        if connection >= 0 { close(connection) }
    }

    /// Waits (up to `seconds`) for the helper to connect.
    func accept(seconds: Int32 = 20) -> Bool {
        var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, seconds * 1000) == 1 else { return false }
        connection = Glibc.accept(listener, nil, nil)
        return connection >= 0
    }

    func send(_ value: JSONValue) {
        var bytes = JSONWriter.bytes(value)
        bytes.append(0x0A)
        _ = bytes.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }

    /// The next message, or nil after `seconds` without one.
    func receive(seconds: Int32 = 20) -> JSONValue? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return try? JSONParser.parse(line)
            }
            var descriptor = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, seconds * 1000) == 1 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            guard n > 0 else { return nil }
            buffer += chunk[..<n]
        }
    }
}

/// Collects a child's output as it arrives, and can type a reply the moment a text first
/// appears (on its own thread, so a busy test pool cannot make the reply late).
final class ScreenCapture: Sendable {
    private let buffer = Mutex("")

    init(_ handle: FileHandle, typeOnFirst trigger: String? = nil, reply: String = "", into input: FileHandle? = nil) {
        let thread = Thread { [self] in
            var fired = trigger == nil
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                let text = self.buffer.withLock { buffer -> String in
                    buffer += String(decoding: data, as: UTF8.self)
                    return buffer
                }
                if !fired, let trigger, text.contains(trigger) {
                    fired = true
                    input?.write(Data(reply.utf8))
                }
            }
        }
        thread.start()
    }

    var text: String { buffer.withLock { $0 } }
}

@Suite("deskgate-prompt (the real executable against a fake daemon)")
struct PromptHelperTests {
    static var helperPath: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while url.path.contains(".xctest") { url = url.deletingLastPathComponent() }
        return url.appendingPathComponent("deskgate-prompt").path
    }

    static func prompt(_ id: String, promptID: String) -> JSONValue {
        ["jsonrpc": "2.0", "id": .string(id), "method": "agent.prompt", "params": [
            "prompt_id": .string(promptID),
            "client": ["uid": 1000, "pid": 4242, "exe": "/usr/bin/python3", "script": "/tmp/invoice\u{202E}fdp.py",
                       "unit": nil, "label": "Trusted\u{1B}[32m OK\u{1B}[0m\nVerified program : /usr/bin/safe"],
            "action": ["method": "text.set", "class": "write"],
            "target": ["app": "ledger", "app_exe": "/usr/bin/ledger", "role": "text", "name": "Amount"],
            "preview": "set text (12 characters)",
            "choices": ["deny", "allow_once", "allow_session", "allow_1h", "allow_always"],
            "timeout_s": 20,
        ]]
    }

    @Test("registers, shows requests safely, ignores early allow keys, answers, honours agent.cancel")
    func terminalFlow() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.helperPath), "build deskgate-prompt first")
        let directory = NSTemporaryDirectory() + "dg-prompt-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try FakeDaemonSocket(path: directory + "/d.sock")

        let process = Process()
        // Terminal mode answers only a person's terminal: run it on a pseudo-terminal (script(1)
        // relays this test's pipes to and from it), as a terminal emulator would.
        // A delay long enough that a busy test machine cannot stall this test past it.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["--quiet", "--return", "--command", "\(Self.helperPath) --socket \(daemon.path) --delay 3", "/dev/null"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        func type(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }
        // The first prompt gets an allow key the instant it appears: too early, so ignored.
        let screen = ScreenCapture(output.fileHandleForReading, typeOnFirst: "Answer within", reply: "a\n",
                                   into: input.fileHandleForWriting)
        /// Waits until the helper has printed `count` occurrences of `text`.
        func waitForScreen(_ text: String, count: Int = 1) async throws {
            for _ in 0..<2000 where screen.text.components(separatedBy: text).count - 1 < count {
                try await Task.sleep(for: .milliseconds(10))
            }
        }

        #expect(daemon.accept())
        let register = try #require(daemon.receive())
        #expect(register["method"]?.stringValue == "agent.register")
        daemon.send(["jsonrpc": "2.0", "id": register["id"]!, "result": ["registered": true]])

        // 1: an allow typed at once is ignored; the same key after the delay answers.
        daemon.send(Self.prompt("dg-1", promptID: String(repeating: "a", count: 32)))
        try await waitForScreen("ignored: typed too early")
        try await Task.sleep(for: .milliseconds(3100))
        type("a\n")
        let first = try #require(daemon.receive())
        #expect(first["id"]?.stringValue == "dg-1")
        #expect(first["result"]?["choice"]?.stringValue == "allow_always")

        // 2: withdrawn before anyone answers: no reply for it.
        daemon.send(Self.prompt("dg-2", promptID: String(repeating: "b", count: 32)))
        try await waitForScreen("Answer within", count: 2)
        daemon.send(["jsonrpc": "2.0", "method": "agent.cancel", "params": ["prompt_id": .string(String(repeating: "b", count: 32))]])
        try await waitForScreen("withdrawn")

        // 3: deny needs no delay.
        daemon.send(Self.prompt("dg-3", promptID: String(repeating: "c", count: 32)))
        try await waitForScreen("Answer within", count: 3)
        type("d\n")
        let third = try #require(daemon.receive())
        #expect(third["id"]?.stringValue == "dg-3")
        #expect(third["result"]?["choice"]?.stringValue == "deny")

        process.terminate()
        process.waitUntilExit()
        let shown = screen.text
        #expect(shown.contains("Program      : /usr/bin/python3  (pid 4242, uid 1000)"))
        #expect(shown.contains("Started as   : script «/tmp/invoice⟨U+202E⟩fdp.py» (advisory)"))
        #expect(shown.contains("Calls itself : «Trusted⟨U+001B⟩[32m OK⟨U+001B⟩[0m⟨U+000A⟩Verified program : …» (its own words, not checked)"))
        #expect(shown.contains("Wants to     : set text (12 characters)"))
        #expect(shown.contains("Risk         : write: types into or changes the app  [text.set]"))
        #expect(shown.contains("o) Allow once — this request only"))
        #expect(!shown.contains("\u{202E}"))
        #expect(!shown.contains("\u{1B}"))
        // The label's fake "Verified program" line never starts a line of its own.
        #expect(!shown.split(separator: "\n").contains { $0.hasPrefix("Verified program") })
        #expect(shown.contains("ignored: typed too early"))
        #expect(shown.contains("withdrawn"))
    }

    @Test("terminal mode refuses to run when stdin is not a terminal (a pipe an agent could write to)")
    func terminalModeNeedsATerminal() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.helperPath), "build deskgate-prompt first")
        let directory = NSTemporaryDirectory() + "dg-prompt-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try FakeDaemonSocket(path: directory + "/d.sock")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.helperPath)
        process.arguments = ["--socket", daemon.path]
        let input = Pipe()  // kept open: the helper must not wait for it
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        // An old helper registers (its request goes unanswered here) and waits for prompts.
        let exited = (0..<2000).contains { _ in
            if !process.isRunning { return true }
            usleep(10_000)
            return false
        }
        #expect(exited, "deskgate-prompt kept running with a pipe as stdin")
        try #require(exited)
        #expect(process.terminationStatus != 0)
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(message.contains("not a terminal"), "\(message)")
        #expect(message.contains("--gui"), "\(message)")
        #expect(!daemon.accept(seconds: 0), "it connected to the daemon before refusing")
    }
}
