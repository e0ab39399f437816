import ArgumentParser
import DeskgateClient
import JSONRPC

struct Apps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List accessible apps and their windows.",
        discussion: "Shows only apps this program may observe by a policy rule or a remembered grant: listing never asks a person.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await client.call("apps.list")
            client.emit(result) { apps in
                if apps.arrayValue?.isEmpty ?? true {
                    return "No apps to show: apps are listed only where a policy rule or a remembered grant lets this program observe them (listing never asks). `deskgate tree APP` asks a person for one app; docs/policy.md shows rules."
                }
                return (apps.arrayValue ?? []).map { app in
                    var lines = ["\(app["name"]?.stringValue ?? "?")  id=\(app["id"]?.stringValue ?? "?") pid=\(app["pid"].map { JSONWriter.string($0) } ?? "?") toolkit=\(app["toolkit"]?.stringValue ?? "?") exe=\(app["exe"]?.stringValue ?? "?")"]
                    for window in app["windows"]?.arrayValue ?? [] {
                        let active = window["active"]?.boolValue == true ? " (active)" : ""
                        lines.append("  - \(window["role"]?.stringValue ?? "window") \"\(window["name"]?.stringValue ?? "")\" [ref=\(window["ref"]?.stringValue ?? "")]\(active)")
                    }
                    return lines.joined(separator: "\n")
                }.joined(separator: "\n")
            }
        }
    }
}

struct Tree: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an app's accessibility tree.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "App id or name.") var app: String
    @Flag(help: "Print the compact outline (default unless --json).") var outline = false
    @Option(help: "all, showing or interactive.") var filter: String?
    @Option(help: "Maximum nodes.") var maxNodes: Int?
    @Option(help: "Maximum depth.") var maxDepth: Int?
    @Option(help: "Subtree root ref.") var root: String?

    func run() async throws {
        try await runReporting {
            var params: JSONObject = ["app": .string(app)]
            let wantOutline = outline || !client.json
            params["format"] = .string(wantOutline ? "outline" : "json")
            if let filter { params["filter"] = .string(filter) }
            if let maxNodes { params["max_nodes"] = JSONValue(maxNodes) }
            if let maxDepth { params["max_depth"] = JSONValue(maxDepth) }
            if let root { params["root"] = .string(root) }
            let result = try await client.call("tree.snapshot", .object(params))
            if wantOutline && !client.json {
                print(result["outline"]?.stringValue ?? "", terminator: "")
                if result["truncated"]?.boolValue == true { print("… truncated (use --max-nodes)") }
            } else {
                print(JSONWriter.string(result))
            }
        }
    }
}

struct Find: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Find elements by role, name and states.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "App id or name.") var app: String
    @Option(help: "Role, e.g. \"push button\".") var role: String?
    @Option(help: "Exact name.") var name: String?
    @Option(help: "Case-insensitive name substring.") var nameContains: String?
    @Option(help: "Required state (repeatable).") var state: [String] = []
    @Option(help: "Maximum results.") var limit: Int?

    func run() async throws {
        try await runReporting {
            var params: JSONObject = ["app": .string(app)]
            if let role { params["role"] = .string(role) }
            if let name { params["name"] = .string(name) }
            if let nameContains { params["name_contains"] = .string(nameContains) }
            if !state.isEmpty { params["states"] = JSONValue(state) }
            if let limit { params["limit"] = JSONValue(limit) }
            let result = try await client.call("elements.find", .object(params))
            client.emit(result) { r in (r["nodes"]?.arrayValue ?? []).map(NodeText.line).joined(separator: "\n") }
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one element in detail.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("element.get", ["ref": .string(ref)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print an element's text.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("text.read", ["ref": .string(ref)])
            client.emit(result) { $0["text"]?.stringValue ?? "" }
        }
    }
}

struct Activate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Perform an element's action (default: its first).")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String
    @Argument(help: "Action name.") var action: String?

    func run() async throws {
        try await runReporting {
            var params: JSONObject = ["ref": .string(ref)]
            if let action { params["action"] = .string(action) }
            let result = try await client.call("element.activate", .object(params))
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Focus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Move keyboard focus to an element.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("element.focus", ["ref": .string(ref)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct SetText: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Replace an editable element's text.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String
    @Argument(help: "New text.") var value: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("text.set", ["ref": .string(ref), "value": .string(value)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Fill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fill the field with this name or label.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "App id or name.") var app: String
    @Argument(help: "Field name or label.") var field: String
    @Argument(help: "Text to set.") var value: String

    func run() async throws {
        try await runReporting {
            let result = try await client.call("field.fill", ["app": .string(app), "field": .string(field), "value": .string(value)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct FillSecret: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill-secret",
        abstract: "Fill a password field with a secret from the desktop's keyring; the secret is never shown.",
        discussion: "Name the keyring item by its exact label (--label) or by attributes it carries (--attribute KEY=VALUE, repeatable). Class secret: allowed only by a rule naming the item, this program and the app exactly, or by a person each time.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "App id or name.") var app: String
    @Argument(help: "The password field's name or label.") var field: String
    @Option(help: "The keyring item's exact label.") var label: String?
    @Option(name: .customLong("attribute"), help: "KEY=VALUE an attribute of the keyring item (repeatable).") var attributes: [String] = []

    func validate() throws {
        if (label == nil) == attributes.isEmpty { throw ValidationError("give exactly one of --label and --attribute") }
        for pair in attributes where !pair.contains("=") { throw ValidationError("--attribute takes KEY=VALUE, not \(pair)") }
    }

    func run() async throws {
        try await runReporting {
            var secret: JSONObject = [:]
            if let label {
                secret.append("label", .string(label))
            } else {
                var pairs: JSONObject = [:]
                for pair in attributes {
                    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    pairs[String(parts[0])] = .string(String(parts[1]))
                }
                secret.append("attributes", .object(pairs))
            }
            let result = try await client.call("field.fill_secret",
                                               ["app": .string(app), "field": .string(field), "secret": .object(secret)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct SetValue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-value", abstract: "Set a range element's value.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Element ref.") var ref: String
    @Argument(help: "Value.") var value: Double

    func run() async throws {
        try await runReporting {
            let result = try await client.call("value.set", ["ref": .string(ref), "value": .double(value)])
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stream accessibility events until interrupted.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Event types: focus window children state name text (default: all).") var events: [String] = []

    func run() async throws {
        try await runReporting {
            let connection = try await client.connect()
            let types = events.isEmpty ? ["focus", "window", "children", "state", "name", "text"] : events
            do {
                _ = try await connection.call("events.subscribe", ["events": JSONValue(types)])
            } catch {
                throw CLIFailure(error)
            }
            for await message in connection.incoming {
                guard case .notification(let notification) = message, notification.method == "event", let event = notification.params else { continue }
                if client.json {
                    print(JSONWriter.string(event))
                } else {
                    print("\(event["type"]?.stringValue ?? "?") \(event["app"]?.stringValue ?? "") \(event["ref"]?.stringValue ?? "") \(event["detail"].map { JSONWriter.string($0) } ?? "")")
                }
            }
        }
    }
}

enum NodeText {
    static func line(_ node: JSONValue) -> String {
        let states = (node["states"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
        return "- \(node["role"]?.stringValue ?? "?") \"\(node["name"]?.stringValue ?? "")\" [ref=\(node["ref"]?.stringValue ?? "")] (\(states))"
    }
}
