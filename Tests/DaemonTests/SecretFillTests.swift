#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

/// A real gnome-keyring-daemon (Secret Service) on a session bus of the test's own, with its
/// keyring in a temporary home, unlocked from the test with a known password.
final class Keyring: @unchecked Sendable {
    static let password = "deskgate-test-keyring"
    let bus: SessionBus
    let home: TempDirectory
    private var daemon: Process?

    var environment: [String: String] {
        ["DBUS_SESSION_BUS_ADDRESS": bus.address, "HOME": home.path, "XDG_DATA_HOME": home.file("data"),
         "XDG_RUNTIME_DIR": home.file("run")]
    }

    init() throws {
        bus = try SessionBus()
        home = TempDirectory("deskgate-keyring")
        try FileManager.default.createDirectory(atPath: home.file("run"), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try start()
    }

    /// Starts the keyring daemon (unlocking, or creating, the login keyring with ``password``)
    /// and waits until it owns `org.freedesktop.secrets`.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/gnome-keyring-daemon")
        process.arguments = ["--unlock", "--components=secrets", "--foreground"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        input.fileHandleForWriting.write(Data(Self.password.utf8))
        try input.fileHandleForWriting.close()
        daemon = process
        for _ in 0..<200 where !owned() { usleep(50_000) }
        guard owned() else { throw TestFailure("gnome-keyring-daemon did not take org.freedesktop.secrets") }
    }

    /// Whether some process owns `org.freedesktop.secrets` on the bus (nothing starts one on asking).
    func owned() -> Bool {
        (try? run(["/usr/bin/gdbus", "call", "--session", "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus",
                   "--method", "org.freedesktop.DBus.NameHasOwner", "org.freedesktop.secrets"]))?.contains("true") == true
    }

    /// Stores an item with `secret-tool` (the secret on its stdin, never on a command line).
    func store(label: String, secret: String, attributes: [(String, String)]) throws {
        _ = try run(["/usr/bin/secret-tool", "store", "--label=\(label)"] + attributes.flatMap { [$0.0, $0.1] }, input: secret)
    }

    /// Locks the login keyring (`Service.Lock`: no prompt needed to lock).
    func lock() throws {
        _ = try run(["/usr/bin/gdbus", "call", "--session", "--dest", "org.freedesktop.secrets", "--object-path", "/org/freedesktop/secrets",
                     "--method", "org.freedesktop.Secret.Service.Lock", "[objectpath '/org/freedesktop/secrets/collection/login']"])
    }

    func stopDaemon() {
        guard let daemon, daemon.isRunning else { return }
        kill(daemon.processIdentifier, SIGKILL)
        daemon.waitUntilExit()
        for _ in 0..<100 where owned() { usleep(50_000) }
    }

    func stop() {
        stopDaemon()
        bus.stop()
        home.remove()
    }

    @discardableResult
    private func run(_ command: [String], input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("\(command[0]) exited \(process.terminationStatus)") }
        return text
    }
}

/// `field.fill_secret` end to end: a real keyring, a real daemon, a real GTK3 app.
@Suite("Credentials from the keyring, never seen by the agent", .serialized,
       .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct SecretFillTests {
    static let label = "deskgate test login"
    static let canary = "CANARY-s3cret-7f3a9c1e"

    /// This test process: the client a rule names exactly.
    static var selfExe: String { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "" }

    static func policy(appExe: String) -> String {
        """
        [[rule]]
        id = "fixtures"
        effect = "allow"
        actions = ["observe", "read", "act", "write"]
        app = "deskgate-e2e-*"

        [[rule]]
        id = "test-login"
        effect = "allow"
        actions = ["secret"]
        secret_item = "\(label)"
        client_exe = "\(selfExe)"
        app_exe = "\(appExe)"
        """
    }

    @Test("a rule naming the item fills the password field; the canary appears in no reply, event, log or file; the audit has the label and the length; errors are clear and fill nothing")
    func fillByRule() async throws {
        let keyring = try Keyring()
        defer { keyring.stop() }
        try keyring.store(label: Self.label, secret: Self.canary, attributes: [("service", "deskgate-test"), ("user", "alice")])
        // (secret-tool replaces an item with exactly the same attributes: the twins differ in one.)
        try keyring.store(label: "twin one", secret: "other-1", attributes: [("shared", "yes"), ("n", "1")])
        try keyring.store(label: "twin two", secret: "other-2", attributes: [("shared", "yes"), ("n", "2")])
        // The fixture's verified executable: python3's real path.
        let appExe = URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path
        let daemon = try DaemonProcess(environment: keyring.environment, userPolicy: Self.policy(appExe: appExe))
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        let watcher = try await daemon.client()
        defer { watcher.closeNow() }
        _ = try await watcher.call("events.subscribe", ["events": ["text", "name", "state", "focus"]])
        let events = EventLog(watcher)
        var replies: [String] = []

        // By label.
        let filled = try await client.call("field.fill_secret",
                                           ["app": .string(app.name), "field": "Password", "secret": ["label": .string(Self.label)]])
        replies.append(JSONWriter.string(filled))
        #expect(filled["ok"] == true && filled["matches"] == true && filled["secret_item"] == .string(Self.label), "\(filled)")
        // The app received it: the fixture logs the length, never the text.
        #expect(app.waitForLine("text-changed password \(Self.canary.count)", timeout: 10), "\(app.output.suffix(5))")

        // By attributes: the same item.
        let byAttributes = try await client.call("field.fill_secret", [
            "app": .string(app.name), "field": "Password", "secret": ["attributes": ["service": "deskgate-test", "user": "alice"]],
        ])
        replies.append(JSONWriter.string(byAttributes))
        #expect(byAttributes["secret_item"] == .string(Self.label))

        // Never into a field that is not a password field (it could be read back).
        let name = await Flows.failure(client, "field.fill_secret",
                                       ["app": .string(app.name), "field": "Name", "secret": ["label": .string(Self.label)]])
        #expect(name?.code.rawValue == -32005, "\(String(describing: name))")
        // Unknown item, several items, an item no rule names (asked; no helper: denied).
        let missing = await Flows.failure(client, "field.fill_secret",
                                          ["app": .string(app.name), "field": "Password", "secret": ["label": "no such item"]])
        #expect(missing?.code.rawValue == -32011, "\(String(describing: missing))")
        let twins = await Flows.failure(client, "field.fill_secret",
                                        ["app": .string(app.name), "field": "Password", "secret": ["attributes": ["shared": "yes"]]])
        #expect(twins?.code.rawValue == -32009, "\(String(describing: twins))")
        let unnamed = await Flows.failure(client, "field.fill_secret",
                                          ["app": .string(app.name), "field": "Password", "secret": ["label": "twin one"]])
        #expect(unnamed?.code.rawValue == -32001 && unnamed?.data?["reason"] == "no_agent", "\(String(describing: unnamed))")
        for error in [name, missing, twins, unnamed] { replies.append(String(describing: error)) }

        // A locked keyring: -32010 locked, nothing filled, the keyring not unlocked.
        let changes = app.output.filter { $0.hasPrefix("text-changed password") }.count
        try keyring.lock()
        let locked = await Flows.failure(client, "field.fill_secret",
                                         ["app": .string(app.name), "field": "Password", "secret": ["label": .string(Self.label)]])
        #expect(locked?.code.rawValue == -32010 && locked?.data?["reason"] == "locked", "\(String(describing: locked))")
        // No keyring at all: -32010 no_service, and the request did not start one (NO_AUTO_START;
        // the bus could activate gnome-keyring from its service file).
        keyring.stopDaemon()
        let none = await Flows.failure(client, "field.fill_secret",
                                       ["app": .string(app.name), "field": "Password", "secret": ["label": .string(Self.label)]])
        #expect(none?.code.rawValue == -32010 && none?.data?["reason"] == "no_service", "\(String(describing: none))")
        #expect(!keyring.owned(), "a request started a keyring")
        try await Task.sleep(for: .milliseconds(300))
        #expect(app.output.filter { $0.hasPrefix("text-changed password") }.count == changes)
        for error in [locked, none] { replies.append(String(describing: error)) }

        // The audit: the item's label and the secret's length; the value nowhere.
        let records = Flows.records(daemon, method: "field.fill_secret")
        let first = try #require(records.first)
        #expect(first.decision?["target"]?["secret_item"] == .string(Self.label))
        #expect(first.decision?["decision"]?["class"] == "secret" && first.decision?["decision"]?["rule"] == "test-login",
                "\(String(describing: first.decision))")
        #expect(first.outcome?["details"]?["secret_length"] == .int(Int64(Self.canary.count)), "\(String(describing: first.outcome))")
        #expect(first.decision?["target"]?["value"] == nil)

        // The canary: in no reply, event, log line or file the daemon wrote.
        let everything = replies.joined() + events.all.map { JSONWriter.string($0) }.joined()
        #expect(!everything.contains(Self.canary))
        #expect(!String(decoding: daemon.allWrittenBytes(), as: UTF8.self).contains(Self.canary))
        #expect(!app.output.joined().contains(Self.canary))
    }

    @Test("without a rule, the person is asked: only deny and allow_once are offered, the prompt names the item and never holds the secret")
    func fillByPrompt() async throws {
        let keyring = try Keyring()
        defer { keyring.stop() }
        try keyring.store(label: Self.label, secret: Self.canary, attributes: [("service", "deskgate-test")])
        let daemon = try DaemonProcess(environment: keyring.environment, userPolicy: """
            [[rule]]
            effect = "allow"
            actions = ["*"]
            app = "deskgate-e2e-*"
            """, adminPolicy: "prompt_agents = [\"/usr/bin/python3\"]\n")
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let desktop = try DesktopLayout("secret-prompt", daemon: daemon, helperArguments: ["--answer", "allow_once", "--answer", "deny"])
        defer { desktop.stop() }
        let params: JSONValue = ["app": .string(app.name), "field": "Password", "secret": ["label": .string(Self.label)]]
        let allowed = try daemon.callFromPython("field.fill_secret", params, wrapper: desktop.agentGroup.wrapper)
        #expect(allowed["result"]?["matches"] == true, "\(allowed)")
        #expect(app.waitForLine("text-changed password \(Self.canary.count)", timeout: 10))
        let denied = try daemon.callFromPython("field.fill_secret", params, wrapper: desktop.agentGroup.wrapper)
        #expect(denied["error"]?["data"]?["reason"] == "user_denied", "\(denied)")
        let prompts = desktop.helper.lines.filter { $0.hasPrefix("prompt ") }.compactMap { try? JSONParser.parse(String($0.dropFirst("prompt ".count))) }
        #expect(prompts.count == 2)
        #expect(prompts.allSatisfy { $0["choices"] == ["deny", "allow_once"] }, "\(prompts)")
        #expect(prompts.first?["target"]?["secret_item"] == .string(Self.label))
        #expect(prompts.first?["preview"]?.stringValue?.contains(Self.label) == true, "\(String(describing: prompts.first))")
        #expect(!desktop.helper.lines.joined().contains(Self.canary))
        #expect(!JSONWriter.string(allowed).contains(Self.canary))
        #expect(!String(decoding: daemon.allWrittenBytes(), as: UTF8.self).contains(Self.canary))
    }
}
