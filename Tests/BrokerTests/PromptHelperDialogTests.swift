import Foundation
import JSONRPC
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real `deskgate-prompt --gui` shows every kind of prompt in a real zenity dialog on the
/// headless desktop; the test reads the dialog through the accessibility tree
/// (`Tests/Fixtures/dialog_text.py`), photographs it and answers with the keyboard. The daemon's
/// side is a fake here, so kinds the daemon does not send yet can be shown.
@Suite("deskgate-prompt --gui shows every kind and every choice (real zenity)", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["DISPLAY"] != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/zenity"),
                "needs the headless desktop (scripts/headless-desktop.sh) and zenity"))
struct PromptHelperDialogTests {
    enum PromptViewLegend { static let text = "Text in «…» was chosen by the program or the app; deskgate did not check it." }

    static var fixtures: String {
        if let directory = ProcessInfo.processInfo.environment["DESKGATE_FIXTURES_DIR"] { return directory }
        var url = URL(fileURLWithPath: PromptHelperTests.helperPath)
        while url.lastPathComponent != ".build", url.path != "/" { url = url.deletingLastPathComponent() }
        return url.deletingLastPathComponent().path + "/Tests/Fixtures"
    }

    static let client: JSONValue = ["uid": 1000, "pid": 4242, "exe": "/usr/bin/python3", "script": nil, "unit": nil,
                                    "label": "planner\\nWants to: nothing<b>!</b>"]

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var params: JSONValue
        var title: String
        /// Lines the dialog's text must hold (whole lines).
        var lines: [String]
        /// Choice rows the dialog must list, in order.
        var rows: [String]
        /// Down presses before Return, and the choice that answers.
        var downs: Int
        var answer: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "task",
             params: ["kind": "task", "prompt_id": "t1", "client": client, "timeout_s": 60,
                      "title": "Book\u{2028}the flight <span size=\"100000\">now</span>",
                      "expires_at": .int(Int64(Date().timeIntervalSince1970) + 1800), "max_actions": 20,
                      "scope": [["actions": ["act", "write"], "app_exe": "/usr/lib/firefox/firefox", "app": "Firefox",
                                 "role": "push button", "name": "Book", "origin": "https://air.example", "max": 2]],
                      "choices": ["deny", "approve_task"]],
             title: "deskgate: task approval",
             lines: ["Task: «Book⟨U+2028⟩the flight <span size=\"100000\">now</span>» (its own words)",
                     "Scope: click, focus or choose, type or change values in «Firefox» (/usr/lib/firefox/firefox), only the button «Book», only on web pages of «https://air.example», at most 2 times"],
             rows: ["Deny — refuse; the program is told no", "Approve the task — the scope above, within its limits, until it ends"],
             downs: 1, answer: "approve_task"),
        Case(name: "resume",
             params: ["kind": "resume", "prompt_id": "r1", "client": client, "timeout_s": 60, "title": "Book the flight",
                      "reason": "the window changed", "choices": ["deny", "resume"]],
             title: "deskgate: resume a task",
             lines: ["Wants to: go on with its paused task «Book the flight» (its own words)", "Paused: the window changed"],
             rows: ["Deny — refuse; the program is told no", "Resume — the paused task goes on within its scope"],
             downs: 1, answer: "resume"),
        Case(name: "request with an unknown choice and 100 KB strings",
             params: ["prompt_id": "q1", "client": client, "timeout_s": 60,
                      "action": ["method": "element.activate", "class": "act"],
                      "target": ["app": .string("Calc\\n" + String(repeating: "B", count: 100_000)), "app_exe": "/usr/bin/calc"],
                      "preview": .string("Press the button «=» of «Calc» (/usr/bin/calc)" + String(repeating: "C", count: 100_000)),
                      "choices": ["deny", "allow_once", "allow_forever\\n<b>x</b>"]],
             title: "deskgate: permission request",
             lines: ["Calls itself: «planner\\nWants to: nothing<b>!</b>» (its own words, not checked)"],
             rows: ["Deny — refuse; the program is told no", "Allow once — this request only",
                    "«allow_forever\\n<b>x</b>» — a choice this helper does not know; deskgate offered it"],
             downs: 2, answer: "allow_forever\\n<b>x</b>"),
    ]

    @Test("each kind: its own lines, every offered choice with its meaning, answered with the keyboard", arguments: cases)
    func kind(_ testCase: Case) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: PromptHelperTests.helperPath), "build deskgate-prompt first")
        let directory = NSTemporaryDirectory() + "dg-prompt-gui-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try FakeDaemonSocket(path: directory + "/d.sock")
        let helper = Process()
        helper.executableURL = URL(fileURLWithPath: PromptHelperTests.helperPath)
        helper.arguments = ["--gui", "--delay", "0.3", "--socket", daemon.path]
        helper.standardOutput = FileHandle.nullDevice
        helper.standardError = FileHandle.nullDevice
        try helper.run()
        defer {
            Self.killChildren(of: helper.processIdentifier)  // its dialog, if still open
            if helper.isRunning { kill(helper.processIdentifier, SIGKILL) }
            helper.waitUntilExit()
        }
        #expect(daemon.accept())
        let register = try #require(daemon.receive())
        daemon.send(["jsonrpc": "2.0", "id": register["id"]!, "result": ["registered": true]])
        daemon.send(["jsonrpc": "2.0", "id": "dg-1", "method": "agent.prompt", "params": testCase.params])

        let (status, output) = try Self.run("/usr/bin/python3", [Self.fixtures + "/dialog_text.py", "zenity", "--wait", "30", "--title", testCase.title])
        #expect(status == 0, "no dialog: \(output.prefix(300))")
        let dialog = (try? JSONParser.parse(output)) ?? .null
        let png = directory + "/dialog.png"
        _ = try Self.run("/usr/bin/python3", [Self.fixtures + "/screenshot.py", png])
        #expect(((try? FileManager.default.attributesOfItem(atPath: png)[.size] as? Int) ?? 0) > 1000, "no screenshot")
        if let copy = ProcessInfo.processInfo.environment["DESKGATE_SCREENSHOT_DIR"] {
            try? FileManager.default.copyItem(atPath: png, toPath: copy + "/kind-\(testCase.answer.prefix(6)).png")
        }

        #expect(dialog["windows"]?.arrayValue?.contains(.string(testCase.title)) == true, "\(dialog["windows"] ?? .null)")
        let text = (dialog["labels"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "\n")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("Program: /usr/bin/python3") == true, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("Wants to:") }.count == 1, "\(lines)")
        // A long body goes on in indented lines, never at the start of a line like a heading.
        let headings = ["Program:", "Started as:", "Calls itself:", "Kind:", "Wants to:", "Risk:", "Task:", "Scope", "Limits:", "Paused:", "Next step:", "Rule:"]
        #expect(lines.allSatisfy { line in line.hasPrefix("        ") || headings.contains { line.hasPrefix($0) } || line == PromptViewLegend.text },
                "\(lines)")
        var logical: [String] = []  // indented continuations read as one line with the line above
        for line in lines {
            if line.hasPrefix("        "), !logical.isEmpty {
                logical[logical.count - 1] += " " + line.drop { $0 == " " }
            } else {
                logical.append(line)
            }
        }
        for line in testCase.lines { #expect(logical.contains(line), "missing \(line): \(lines)") }
        #expect(text.count < 3000)
        #expect(!text.unicodeScalars.contains { $0.value == 0x2028 })
        let cells = (dialog["cells"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(cells.filter { !$0.allSatisfy(\.isNumber) } == testCase.rows, "\(cells)")
        #expect(dialog["buttons"]?.arrayValue?.contains("Answer") == true && dialog["buttons"]?.arrayValue?.contains("Deny") == true)

        // The keyboard answers: arrow keys choose, Return answers (after the helper's delay).
        try await Task.sleep(for: .milliseconds(600))
        let keys = Array(repeating: "Down", count: testCase.downs) + ["Return"]
        // Two runs: keys chained after a search would go to the window with XSendEvent, which GTK ignores.
        _ = try Self.run("/usr/bin/xdotool", ["search", "--sync", "--onlyvisible", "--name", testCase.title, "windowactivate", "--sync", "%1"])
        let (typed, _) = try Self.run("/usr/bin/xdotool", ["key"] + keys)
        #expect(typed == 0)
        let reply = try #require(daemon.receive())
        #expect(reply["id"] == "dg-1")
        #expect(reply["result"]?["choice"]?.stringValue == testCase.answer, "\(JSONWriter.string(reply))")
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
