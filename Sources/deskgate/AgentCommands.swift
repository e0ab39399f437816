import ArgumentParser
import JSONRPC

// Choosing, inserting, scrolling, waiting, navigating, and the doctor.

struct Select: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose an option of a combo box or list, by name or by position.",
        discussion: "Give exactly one of --option and --index. The broker decides on the combo box or list; the audit log records the option asked for.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Ref of the combo box or list.") var ref: String
    @Option(help: "The option's exact name.") var option: String?
    @Option(help: "The option's position, from 0.") var index: Int?

    func validate() throws {
        guard (option == nil) != (index == nil) else { throw ValidationError("give exactly one of --option and --index") }
    }

    func run() async throws {
        try await runReporting {
            var params: JSONObject = ["ref": .string(ref)]
            if let option { params["option_name"] = .string(option) }
            if let index { params["index"] = JSONValue(index) }
            let result = try await client.call("element.select", .object(params))
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct ScrollTo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scroll-to", abstract: "Scroll an element into view.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("element.scroll_into_view", ["ref": .string(ref)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Insert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Insert text into an editable element (default: at the caret, else the end).")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String
    @Argument(help: "Text to insert.") var value: String
    @Option(help: "Character offset to insert at.") var at: Int?

    func run() async throws {
        try await runReporting {
            var params: JSONObject = ["ref": .string(ref), "value": .string(value)]
            if let at { params["at"] = JSONValue(at) }
            let result = try await client.call("text.insert", .object(params))
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until an element matches (or, with --gone, until none does).",
        discussion: "Exits 0 when the condition held, 3 when the timeout passed first.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "App id or name.") var app: String
    @Option(help: "Role, e.g. \"push button\".") var role: String?
    @Option(help: "Exact name.") var name: String?
    @Option(help: "Case-insensitive name substring.") var nameContains: String?
    @Option(help: "Required state (repeatable).") var state: [String] = []
    @Flag(help: "Wait until no element matches.") var gone = false
    @Option(help: "Milliseconds to wait, at most 60000.") var timeoutMs: Int = 10_000

    func run() async throws {
        var found = false
        try await runReporting {
            var params: JSONObject = ["app": .string(app), "timeout_ms": JSONValue(timeoutMs)]
            if let role { params["role"] = .string(role) }
            if let name { params["name"] = .string(name) }
            if let nameContains { params["name_contains"] = .string(nameContains) }
            if !state.isEmpty { params["states"] = JSONValue(state) }
            if gone { params["gone"] = true }
            let result = try await client.call("elements.wait", .object(params))
            found = result["found"]?.boolValue ?? false
            client.emit(result) { r in
                let waited = r["waited_ms"]?.intValue ?? 0
                guard found else { return "timed out after \(waited) ms" }
                if let node = r["node"] { return NodeText.line(node) }
                return "gone after \(waited) ms"
            }
        }
        if !found { throw ExitCode(3) }
    }
}

struct Navigate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open an http or https URL in a running browser (a new tab of Firefox or Chromium).")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The browser's app id or name.") var app: String
    @Argument(help: "Absolute http:// or https:// URL.") var url: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("browser.navigate", ["app": .string(app), "url": .string(url)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say why trees are empty or thin and what to do.",
        discussion: "Checks accessibility, each app's tree, programs not on the accessibility bus, the prompt helper, the policy and the daemon's hardening. Exits 0 unless a check failed (1), so scripts can gate on it; warnings are advice.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        var worst = "ok"
        try await runReporting {
            let result = try await client.call("daemon.doctor")
            worst = result["status"]?.stringValue ?? "error"
            client.emit(result) { r in
                (r["findings"]?.arrayValue ?? []).map { finding in
                    let status = finding["status"]?.stringValue ?? "?"
                    let mark = ["ok": "ok  ", "info": "info", "warning": "WARN", "error": "FAIL"][status] ?? status
                    var line = "[\(mark)] \(finding["message"]?.stringValue ?? "")"
                    if let advice = finding["advice"]?.stringValue, status != "ok" { line += "\n       → \(advice)" }
                    return line
                }.joined(separator: "\n")
            }
        }
        if worst == "error" { throw ExitCode(1) }
    }
}
