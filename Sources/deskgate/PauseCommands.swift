import ArgumentParser
import DeskgateAPI
import JSONRPC

/// The stop button: `deskgate pause | resume | halt`.
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pull the brake: deny every agent request until a person resumes (survives a daemon restart).",
        discussion: "Anyone may pause. Bind it to a desktop keyboard shortcut (docs/incident-response.md).")

    @Argument(help: "Why, for the audit log and `deskgate info`.") var reason: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runReporting {
            var params = JSONObject()
            if let reason { params.append("reason", .string(reason)) }
            let result = try await options.call(BrokerPause.name, .object(params))
            options.emit(result) { PauseText.describe($0) }
        }
    }
}

struct HaltCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "halt",
        abstract: "Pause, and revoke every remembered grant.")

    @Argument(help: "Why, for the audit log and `deskgate info`.") var reason: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runReporting {
            var params = JSONObject()
            if let reason { params.append("reason", .string(reason)) }
            let result = try await options.call(BrokerHalt.name, .object(params))
            options.emit(result) { value in
                PauseText.describe(value) + "\nrevoked \(value["grants_revoked"]?.intValue ?? 0) remembered grant(s)"
            }
        }
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Lift the pause. The person at the desktop is asked through the prompt helper unless a rule names broker.resume.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await options.call(BrokerResume.name)
            options.emit(result) { value in
                value["was_paused"]?.boolValue == true ? "resumed: requests are decided by the policy again" : "deskgate was not paused"
            }
        }
    }
}

/// One line for a pause state (`broker.pause`, `daemon.info`'s `broker.pause`).
enum PauseText {
    static func describe(_ value: JSONValue) -> String {
        guard value["paused"]?.boolValue == true else { return "running (not paused)" }
        var text = "PAUSED since \(value["since"]?.stringValue ?? "?")"
        if let exe = value["by"]?["exe"]?.stringValue {
            text += " by \(exe)"
            if let pid = value["by"]?["pid"]?.intValue { text += " (pid \(pid))" }
        }
        if let reason = value["reason"]?.stringValue {
            text += ", reason (their own words): \(PromptText.sanitize(reason, limit: 200))"
        }
        return text + "; every observe, read, act and write request is denied until `deskgate resume`"
    }
}
