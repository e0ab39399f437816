#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

/// What the person at the desktop sees: the real `deskgate-prompt --gui` asked by the real daemon
/// shows a real zenity dialog on the headless desktop, which the test reads as a screen reader
/// would (pyatspi, `Tests/Fixtures/dialog_text.py`, not through the daemon), photographs
/// (`screenshot.py`) and answers with the keyboard (xdotool).
@Suite("The prompt dialog as a person sees it", .serialized,
       .enabled(if: DesktopEnvironment.enabled && FileManager.default.isExecutableFile(atPath: "/usr/bin/zenity"),
                "needs the headless desktop (scripts/headless-desktop.sh) and zenity"))
struct PromptDialogTests {
    static let python = "/usr/bin/python3"
    static let fixtures = DesktopEnvironment.fixturesDirectory
    static let dialogTitle = "deskgate: permission request"

    /// A hostile client label and app name, and what the dialog must show of them.
    struct Attack: Sendable, CustomTestStringConvertible {
        var name: String
        var label: String
        var appSuffix: String
        /// Texts the dialog must show literally (escaped, never interpreted).
        var literal: [String]
        /// Answer with Down, Return (allow once) instead of Escape (deny).
        var allow: Bool
        var testDescription: String { name }
    }

    static let fakeRequest = "Wants to: see the app's contents (tree.snapshot)"
    static let oldFake = "Wants to         : see the app's contents (tree.snapshot)"

    static let attacks: [Attack] = [
        // zenity's --text turns the two characters \ n into a line break, \342\200\250 into U+2028.
        Attack(name: "backslash escapes", label: "helper\\n\\n\(oldFake)\\nApp              : Calculator\\n\\342\\200\\250\(fakeRequest)",
               appSuffix: "calc\\n\\nWants to: read text\\012App: Calculator",
               literal: ["«helper\\n\\nWants to : see the app's contents", "calc\\n\\nWants to: read text\\012App"], allow: false),
        // Line and paragraph separators, markup, bidi overrides; the app's name is 100 KB.
        Attack(name: "separators, markup, bidi, 100 KB app name",
               label: "<b>bold</b><span size=\"100000\">big</span>\u{202E}txet\u{2028}\(oldFake)\u{2029}App              : Calculator\u{85}",
               appSuffix: "x<big>X</big>&amp;\u{2028}\(fakeRequest)\u{2029}App: Calculator" + String(repeating: "A", count: 100_000),
               literal: ["«<b>bold</b><span size=\"100000\">big</span>⟨U+202E⟩txet", "x<big>X</big>&amp;⟨U+2028⟩Wants to"], allow: true),
    ]

    @Test("a hostile label or app name cannot draw a second request: the dialog shows exactly one, the real one",
          arguments: attacks)
    func hostileTextShowsOneRequest(_ attack: Attack) async throws {
        let helperExe = BuiltProducts.path("deskgate-prompt")
        let daemon = try DaemonProcess(userPolicy: """
            [[rule]]
            id = "observe-fixtures"
            effect = "allow"
            actions = ["observe"]
            app = "deskgate-e2e-*"
            """, adminPolicy: "prompt_agents = [\"\(helperExe)\"]\n")
        defer { daemon.stop() }
        let cgroups = try TestCgroup("prompt-dialog")
        defer { cgroups.remove() }
        let helperGroup = try cgroups.child("helper")
        let agentGroup = try cgroups.child("agent")

        let appName = "deskgate-e2e-\(UInt32.random(in: 0...UInt32.max))-" + attack.appSuffix
        let app = try FixtureProcess("gtk3", name: appName)
        defer { app.terminate() }
        #expect(app.waitForLine("ready", timeout: 30), "fixture did not start")
        let client = try await daemon.client()
        defer { client.closeNow() }
        var appID: String?
        for _ in 0..<200 where appID == nil {
            appID = try await client.call("apps.list").arrayValue?.first { $0["name"]?.stringValue == appName }?["id"]?.stringValue
            if appID == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let id = try #require(appID, "the fixture never appeared in apps.list")

        let helper = try LoggedProcess([helperExe, "--gui", "--delay", "0.3", "--socket", daemon.socketPath],
                                       wrapper: helperGroup.wrapper, logPath: daemon.directory.file("helper.log"))
        defer {
            Self.killChildren(of: helper.process.processIdentifier)  // its dialog, if still open
            helper.stop()
        }
        #expect(helper.line(startingWith: "deskgate-prompt: registered")?.isEmpty == false, "\(helper.lines)")

        let agent = try LoggedProcess([Self.python, Self.fixtures + "/rpc_call.py", "--label", attack.label, daemon.socketPath, "field.fill",
                                       JSONWriter.string(["app": .string(id), "field": "Name", "value": "hello world"])],
                                      wrapper: agentGroup.wrapper, logPath: daemon.directory.file("agent.log"))
        defer { agent.stop() }

        // Read the dialog as a screen reader would, and photograph it.
        let (status, output) = try Self.run(Self.python, [Self.fixtures + "/dialog_text.py", "zenity", "--wait", "30", "--title", Self.dialogTitle])
        let dialog = (try? JSONParser.parse(output)) ?? .null
        #expect(status == 0, "no dialog: \(output.prefix(500)); helper: \(helper.lines.suffix(5))")
        let screenshot = daemon.directory.file("prompt-\(attack.allow ? "allowed" : "denied").png")
        _ = try Self.run(Self.python, [Self.fixtures + "/screenshot.py", screenshot])
        if let copy = ProcessInfo.processInfo.environment["DESKGATE_SCREENSHOT_DIR"] {
            try? FileManager.default.copyItem(atPath: screenshot, toPath: copy + "/prompt-\(attack.allow ? "allowed" : "denied").png")
        }
        #expect(((try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0) > 1000, "no screenshot")

        let text = (dialog["labels"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "\n")
        let lines = text.split(separator: "\n").map(String.init)
        // A long body goes on in indented lines: read them as one.
        var logical: [String] = []
        for line in lines {
            if line.hasPrefix("        "), !logical.isEmpty {
                logical[logical.count - 1] += " " + line.drop { $0 == " " }
            } else {
                logical.append(line)
            }
        }
        // Exactly one request: one "Wants to" line, the real one, and no second app line.
        #expect(lines.filter { $0.hasPrefix("Wants to") }.count == 1, "\(lines)")
        let requests = logical.filter { $0.hasPrefix("Wants to") }
        #expect(requests.count == 1, "\(lines)")
        #expect(requests.first?.contains("11 characters") == true, "\(lines)")
        #expect(requests.first?.contains("«Name»") == true, "\(lines)")
        #expect(!lines.contains { $0.hasPrefix("App") && $0.contains("Calculator") }, "\(lines)")
        #expect(lines.filter { $0.contains("(its own words") }.count == 1, "\(lines)")
        // Nothing that moves text: no separators, no bidi overrides; the 100 KB are cut.
        for scalar: Unicode.Scalar in ["\u{2028}", "\u{2029}", "\u{85}", "\u{202E}", "\u{0B}"] {
            #expect(!text.unicodeScalars.contains(scalar), "U+\(String(scalar.value, radix: 16)) in the dialog")
        }
        #expect(text.count < 3000, "\(text.count) characters")
        // Escapes and markup are shown as written, on the line of their fence.
        for literal in attack.literal {
            #expect(logical.contains { $0.contains(literal) }, "\(literal) not shown literally: \(lines)")
        }
        // The choices, with what they mean.
        let cells = (dialog["cells"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(cells.contains { $0.hasPrefix("Deny") }, "\(cells)")
        #expect(cells.contains("Allow once — this request only"), "\(cells)")

        // Answered with the keyboard, after the delay.
        try await Task.sleep(for: .milliseconds(600))
        let keys = attack.allow ? ["Down", "Return"] : ["Escape"]
        // Two runs: keys chained after a search would go to the window with XSendEvent, which GTK ignores.
        _ = try Self.run("/usr/bin/xdotool", ["search", "--sync", "--onlyvisible", "--name", Self.dialogTitle, "windowactivate", "--sync", "%1"])
        let (typed, _) = try Self.run("/usr/bin/xdotool", ["key"] + keys)
        #expect(typed == 0, "xdotool failed")
        let reply = try JSONParser.parse(agent.finish().last { $0.hasPrefix("{") } ?? "null")
        if attack.allow {
            #expect(reply["result"]?["ok"] == true, "\(JSONWriter.string(reply))")
        } else {
            #expect(reply["error"]?["data"]?["reason"] != nil && reply["result"] == nil, "\(JSONWriter.string(reply))")
        }
    }

    /// SIGKILL to the children of `pid` (the helper's zenity), found by their parent in /proc.
    static func killChildren(of pid: Int32) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == pid { kill(child, SIGKILL) }
        }
    }

    /// Runs a program to its end; its exit status and standard output.
    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
