import ArgumentParser
import Broker
import DeskgateAPI
import Foundation
import JSONRPC

/// `deskgate policy check`, `deskgate grants …`, `deskgate check`: register with
/// `ExtraCommands.all += PolicyCommands.all`.
enum PolicyCommands {
    static let all: [any ParsableCommand.Type] = [PolicyCommand.self, GrantsCommand.self, CheckCommand.self]
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files.",
        subcommands: [PolicyCheckCommand.self])
}

/// Validates policy files offline, with the daemon's own parser: exit 0 when all are valid.
struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate policy files without loading them (exit 1 and file:line on the first error).")

    @Argument(help: "Policy files (TOML).")
    var files: [String]

    @OptionGroup var output: OutputOptions

    func run() throws {
        let json = output.json
        var failed = false
        var results: [JSONValue] = []
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                failed = true
                results.append(["file": .string(path), "ok": false, "error": "cannot read the file"])
                if !json { FileHandleStderr.write("\(path): cannot read the file\n") }
                continue
            }
            let layer: PolicyLayer = path.hasPrefix("/etc/deskgate/") ? .admin : .user
            do {
                let file = try PolicyParser.parse(Array(data), path: path, layer: layer)
                results.append(["file": .string(path), "ok": true, "rules": .int(Int64(file.rules.count)),
                                "sha256": .string(file.sha256)])
                if !json {
                    var summary = "\(path): ok, \(file.rules.count) rule\(file.rules.count == 1 ? "" : "s")"
                    if let effect = file.defaultEffect { summary += ", default \(effect.rawValue)" }
                    if let agents = file.promptHelpers { summary += ", prompt_agents \(agents.joined(separator: " "))" }
                    print(summary)
                }
            } catch {
                failed = true
                results.append(["file": .string(path), "ok": false, "line": .int(Int64(error.line)), "error": .string(error.message)])
                if !json { FileHandleStderr.write("\(error.description)\n") }
            }
        }
        if json { print(JSONWriter.string(.array(results))) }
        if failed { throw ExitCode(1) }
    }
}

struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "List and revoke remembered grants.",
        subcommands: [GrantsListCommand.self, GrantsRevokeCommand.self, GrantsRevokeAllCommand.self],
        defaultSubcommand: GrantsListCommand.self)
}

struct GrantsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Policy rules, remembered grants and live tasks, with layer and id.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await options.call(GrantsList.name)
            options.emit(result) { value in
                var lines: [String] = []
                let rules = value["rules"]?.arrayValue ?? []
                let grants = value["grants"]?.arrayValue ?? []
                lines.append("Rules (\(rules.count)):")
                for rule in rules { lines.append("  " + Self.describe(rule, keys: ["client_exe", "client_script", "app", "app_exe", "role", "name", "expires"])) }
                lines.append("Remembered grants (\(grants.count)):")
                for grant in grants { lines.append("  " + Self.describe(grant, keys: ["client_exe", "client_script", "app", "app_exe", "role", "name", "expires"])) }
                if grants.isEmpty { lines.append("  (none)") }
                let tasks = value["tasks"]?.arrayValue ?? []
                lines.append("Tasks (\(tasks.count)):")
                for task in tasks {
                    let limit = task["max_actions"]?.intValue.map { " of \($0)" } ?? ""
                    lines.append("  \(task["task_id"]?.stringValue ?? "?") until \(task["expires_at"]?.stringValue ?? "?"): \(task["actions_used"]?.intValue ?? 0)\(limit) actions used, client \(task["client"]?["exe"]?.stringValue ?? "?") (pid \(task["client"]?["pid"]?.intValue ?? 0)), title (its own words): \(PromptText.sanitize(task["title"]?.stringValue ?? "", limit: 120))")
                }
                if tasks.isEmpty { lines.append("  (none; `deskgate grants revoke TASK_ID` ends one)") }
                return lines.joined(separator: "\n")
            }
        }
    }

    static func describe(_ entry: JSONValue, keys: [String]) -> String {
        let id = entry["id"]?.stringValue ?? "?"
        let layer = entry["layer"]?.stringValue ?? "?"
        let what = entry["effect"]?.stringValue ?? entry["lifetime"]?.stringValue ?? ""
        let actions = entry["actions"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",")
            ?? entry["method"]?.stringValue ?? ""
        var text = "\(id) [\(layer)] \(what) \(actions)"
        for key in keys { if let value = entry[key]?.stringValue { text += " \(key)=\(JSONWriter.escapedForMessage(value))" } }
        return text
    }
}

struct GrantsRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Remove one remembered grant.")

    @Argument(help: "Grant id (from `deskgate grants list`).")
    var id: String

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await options.call(GrantsRevoke.name, ["id": .string(id)])
            options.emit(result) { value in
                value["revoked"]?.boolValue == true ? "revoked \(id)" : "no remembered grant with id \(id)"
            }
            if result["revoked"]?.boolValue != true, !options.json { throw ExitCode(1) }
        }
    }
}

struct GrantsRevokeAllCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke-all", abstract: "Kill switch: remove every remembered grant.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await options.call(GrantsRevokeAll.name)
            options.emit(result) { value in "revoked \(value["revoked"]?.intValue ?? 0) grant(s)" }
        }
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "What the broker would decide for a request of yours, without acting or prompting.",
        discussion: "Example: deskgate check text.set '{\"ref\": \"r12\", \"value\": \"x\"}'")

    @Argument(help: "Method name, e.g. text.set.")
    var method: String

    @Argument(help: "Params as a JSON object.")
    var params: String?

    @OptionGroup var options: ClientOptions

    func run() async throws {
        var body: JSONObject = ["method": .string(method)]
        if let params {
            guard let parsed = try? JSONParser.parse(params), parsed.objectValue != nil else {
                throw ValidationError("params must be a JSON object, e.g. '{\"app\": \"mousepad\"}'")
            }
            body.append("params", parsed)
        }
        try await runReporting {
            let result = try await options.call(BrokerCheck.name, .object(body))
            options.emit(result) { value in
                var line = value["effect"]?.stringValue ?? "?"
                if let rule = value["rule"]?.stringValue { line += "  rule: \(rule)" }
                if let reason = value["reason"]?.stringValue { line += "  reason: \(reason)" }
                if let riskClass = value["class"]?.stringValue { line += "  class: \(riskClass)" }
                if let message = value["message"]?.stringValue { line += "\n\(message)" }
                return line
            }
        }
    }
}
