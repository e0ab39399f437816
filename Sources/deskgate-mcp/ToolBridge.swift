import DeskgateAPI
import DeskgateClient
import JSONRPC
import Logging

/// A tool call's answer: text for the model, and whether it is an error.
struct ToolOutcome: Sendable, Equatable {
    var text: String
    var isError: Bool
}

/// Runs MCP tool calls as deskgate requests and words their results for a language model.
struct ToolBridge: Sendable {
    let catalog: ToolCatalog
    let link: DaemonLink
    let memory: SessionMemory
    let logger: Logger

    /// How long a tool call may wait for the daemon; covers a person answering a prompt (60 s).
    static let callTimeout: Duration = .seconds(150)
    /// The bridge's own reads around an action; never prompt, never wait long.
    static let auxiliaryTimeout: Duration = .seconds(15)
    static let diffMaxNodes: Int64 = 3000

    func call(name: String, arguments: JSONObject) async -> ToolOutcome {
        guard let tool = catalog.tool(named: name) else {
            return ToolOutcome(text: "Unknown tool '\(name)'. Tools: \(catalog.tools.map(\.name).joined(separator: ", ")).", isError: true)
        }
        var subject = ErrorText.Subject(tool: name, app: arguments["app"]?.stringValue,
                                        field: arguments["field"]?.stringValue, ref: arguments["ref"]?.stringValue)
        if subject.app == nil, let ref = subject.ref { subject.app = memory.scope(of: ref)?.app }
        let outcome: ToolOutcome
        do {
            let params: JSONObject
            do {
                params = try tool.params(from: arguments)
            } catch {
                return ToolOutcome(text: memory.scrub(Self.argumentError(name, error)), isError: true)
            }
            switch tool.kind {
            case .listApps: outcome = try await listApps(tool, params)
            case .snapshot: outcome = try await snapshot(tool, params)
            case .find: outcome = try await find(tool, params)
            case .readText: outcome = try await readText(tool, params)
            case .action: outcome = try await action(tool, params)
            case .check: outcome = try await check(tool, arguments)
            }
        } catch {
            logger.debug("tool \(name) failed: \(error)")
            outcome = ToolOutcome(text: ErrorText.describe(error, subject: subject, tool: tool), isError: true)
        }
        return ToolOutcome(text: memory.scrub(outcome.text), isError: outcome.isError)
    }

    /// "Invalid arguments for TOOL: …" from a schema error (which names the argument).
    static func argumentError(_ tool: String, _ error: RPCError) -> String {
        guard let field = error.data?["field"]?.stringValue else { return "Invalid arguments for \(tool): \(error.message)." }
        let prefix = "invalid params: \(field): "
        let detail = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
        return "Invalid arguments for \(tool): '\(field)': \(detail)."
    }

    // MARK: - Reads

    private func listApps(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        guard let apps = result.arrayValue else { return ToolOutcome(text: ErrorText.compact(result), isError: false) }
        if apps.isEmpty {
            return ToolOutcome(text: "No apps to show. Apps are listed only where the person's policy (a rule or an earlier approval) lets deskgate-mcp observe them; listing never asks. If you know the app's name, call snapshot with it: that asks the person once.", isError: false)
        }
        var lines: [String] = []
        var scopes: [String: RefScope] = [:]
        for app in apps {
            let id = app["id"]?.stringValue ?? "?"
            let name = app["name"]?.stringValue ?? ""
            var facts = ["id \(id)"]
            if let pid = app["pid"]?.intValue { facts.append("pid \(pid)") }
            if let toolkit = app["toolkit"]?.stringValue, !toolkit.isEmpty { facts.append(toolkit) }
            if let exe = app["exe"]?.stringValue, !exe.isEmpty { facts.append(exe) }
            lines.append("\(quoted(name)) (\(facts.joined(separator: ", ")))")
            for window in app["windows"]?.arrayValue ?? [] {
                let ref = window["ref"]?.stringValue
                let role = window["role"]?.stringValue ?? "window"
                var line = "  - \(role) \(quoted(window["name"]?.stringValue ?? ""))"
                if let ref { line += " [ref=\(ref)]" }
                if window["active"]?.boolValue == true { line += " (active)" }
                lines.append(line)
                if let ref { scopes[ref] = RefScope(app: id, window: ref, windowName: window["name"]?.stringValue) }
            }
        }
        memory.remember(scopes)
        return ToolOutcome(text: lines.joined(separator: "\n"), isError: false)
    }

    private func snapshot(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        let app = result["app"]?.stringValue ?? params["app"]?.stringValue ?? ""
        let outline = result["outline"]?.stringValue ?? ""
        let lines = OutlineLine.parse(outline)
        memory.remember(OutlineScopes.scopes(of: lines, app: app))
        var header = "App \(quoted(params["app"]?.stringValue ?? app)): \(lines.count) elements"
        header += " (filter \(params["filter"]?.stringValue ?? "interactive"))"
        if result["truncated"]?.boolValue == true {
            header += "; cut off at \(params["max_nodes"]?.intValue ?? ToolCatalog.snapshotDefaultMaxNodes) nodes: use find, or a larger max_nodes"
        }
        return ToolOutcome(text: header + "\n" + outline.trimmingSuffix("\n"), isError: false)
    }

    private func find(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        let nodes = result["nodes"]?.arrayValue ?? []
        let app = params["app"]?.stringValue ?? ""
        if nodes.isEmpty { return ToolOutcome(text: "No matching elements in \(quoted(app)).", isError: false) }
        var scopes: [String: RefScope] = [:]
        var lines = ["\(nodes.count) matching element\(nodes.count == 1 ? "" : "s") in \(quoted(app))"
            + (result["truncated"]?.boolValue == true ? " (more exist; narrow the search)" : "") + ":"]
        for node in nodes {
            lines.append(describeNode(node))
            if let ref = node["ref"]?.stringValue, memory.scope(of: ref) == nil { scopes[ref] = RefScope(app: app, role: node["role"]?.stringValue) }
        }
        memory.remember(scopes)
        return ToolOutcome(text: lines.joined(separator: "\n"), isError: false)
    }

    private func readText(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        return ToolOutcome(text: result["text"]?.stringValue ?? ErrorText.compact(result), isError: false)
    }

    // MARK: - Actions

    private func action(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let targetRef = params["ref"]?.stringValue
        // Scope of the diff: the element's window when we have seen it, else its whole app.
        var scope = targetRef.flatMap(memory.scope(of:))
        if scope == nil, let app = params["app"]?.stringValue { scope = RefScope(app: app) }
        let before = await outline(of: scope)

        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: false)

        let ref = targetRef ?? result["ref"]?.stringValue
        let element = await elementLine(ref: ref)
        let role = element?.role ?? ref.flatMap(memory.scope(of:))?.role
        if role == "password text", let value = params["value"]?.stringValue {
            memory.rememberSecret(value)
        }
        var changes: [OutlineDiff.Change]?
        if let before {
            var after = await outline(of: scope)
            if let a = after, OutlineDiff.changes(before: before, after: a).isEmpty {
                // Some toolkits apply an action after the call returns; look once more.
                try? await Task.sleep(for: .milliseconds(250))
                after = await outline(of: scope) ?? after
            }
            changes = after.map { OutlineDiff.changes(before: before, after: $0) }
        }
        return ToolOutcome(text: actionSummary(tool, params: params, result: result, ref: ref, element: element,
                                               scope: scope, changes: changes),
                           isError: result["ok"]?.boolValue == false)
    }

    private func actionSummary(
        _ tool: ToolDefinition, params: JSONObject, result: JSONValue, ref: String?, element: OutlineLine?,
        scope: RefScope?, changes: [OutlineDiff.Change]?
    ) -> String {
        var lines: [String] = []
        // A short name for the first line; the element's full line follows.
        let short = element.map { "\($0.role) \(quoted($0.name))" } ?? ref.map { "element \($0)" } ?? "the element"
        switch tool.name {
        case "activate":
            let action = result["action"]?.stringValue ?? params["action"]?.stringValue ?? "default action"
            lines.append("Did '\(action)' on \(short).")
        case "focus":
            lines.append("Focused \(short).")
        case "fill_field", "set_text":
            let what = params["field"]?.stringValue.map { "field \(quoted($0))" } ?? short
            let length = result["length"]?.intValue.map { " (\($0) characters)" } ?? ""
            switch result["matches"]?.boolValue {
            case true?: lines.append("Set the text of \(what)\(length); it now holds the value.")
            case false?: lines.append("Set the text of \(what), but it does not hold the value afterwards (the app may have changed or rejected it).")
            case nil: lines.append("Set the text of \(what).")
            }
        case "set_value":
            let value = result["value"].map(Self.number) ?? "?"
            lines.append("Set the value of \(short); it is now \(value).")
        default:
            lines.append("Done: \(tool.name) on \(short).")
        }
        if let element {
            lines.append("Element now: " + element.key(withRef: true))
        } else if let states = result["states"]?.arrayValue?.compactMap(\.stringValue) {
            lines.append("States now: " + (states.isEmpty ? "none" : states.joined(separator: ", ")) + ".")
        }
        let place = scope?.windowName.map { "window \(quoted($0))" } ?? scope.map { "app \(quoted($0.app))" } ?? "the window"
        switch changes {
        case nil where scope == nil:
            lines.append("(No outline diff: this ref was not seen in a snapshot of this session.)")
        case nil:
            lines.append("(No outline diff: \(place) could not be read before and after the action.)")
        case let changes? where changes.isEmpty:
            lines.append("Nothing else changed in \(place).")
        case let changes?:
            lines.append("Changes in \(place):")
            lines.append(OutlineDiff.render(changes))
        }
        return lines.joined(separator: "\n")
    }

    /// The outline of `scope` as the bridge reads it for diffs, never prompting.
    ///
    /// Filter `showing` keeps the read small and the diff about what is on screen. Some
    /// toolkits (GTK 4.8) mark only the window itself `showing`; when a read shows windows with
    /// nothing inside, this app is read with `all` from then on.
    private func outline(of scope: RefScope?) async -> [OutlineLine]? {
        guard let scope else { return nil }
        do {
            var filter = memory.diffFilter(app: scope.app)
            var lines = try await readOutline(scope, filter: filter)
            if filter == "showing", OutlineScopes.onlyEmptyWindows(lines) {
                filter = "all"
                memory.setDiffFilter(filter, app: scope.app)
                lines = try await readOutline(scope, filter: filter)
            }
            memory.remember(OutlineScopes.scopes(of: lines, app: scope.app).mapValues { found in
                // A subtree read starts below the app; keep the window we know.
                found.window == nil ? RefScope(app: scope.app, window: scope.window, windowName: scope.windowName, role: found.role) : found
            })
            return lines
        } catch {
            logger.debug("outline read for diff failed: \(error)")
            return nil
        }
    }

    private func readOutline(_ scope: RefScope, filter: String) async throws -> [OutlineLine] {
        var params: JSONObject = ["app": .string(scope.app), "filter": .string(filter), "format": "outline",
                                  "max_nodes": .int(Self.diffMaxNodes), "interactive": false]
        if let window = scope.window { params["root"] = .string(window) }
        let result = try await link.call(TreeSnapshot.name, params, timeout: Self.auxiliaryTimeout, retryable: true)
        guard let text = result["outline"]?.stringValue else { throw RPCError.internalError("snapshot without outline") }
        return OutlineLine.parse(text)
    }

    /// The element as one outline-style line (role, name, ref, states), read after an action.
    private func elementLine(ref: String?) async -> OutlineLine? {
        guard let ref else { return nil }
        do {
            let node = try await link.call(ElementGet.name, ["ref": .string(ref), "interactive": false],
                                           timeout: Self.auxiliaryTimeout, retryable: true)
            return OutlineLine(describeNode(node))
        } catch {
            logger.debug("element.get after action failed: \(error)")
            return nil
        }
    }

    // MARK: - Check

    private func check(_ tool: ToolDefinition, _ arguments: JSONObject) async throws -> ToolOutcome {
        let toolName = arguments["tool"]?.stringValue ?? ""
        guard let target = catalog.tool(named: toolName), target.kind != .check else {
            return ToolOutcome(text: "check: unknown tool '\(toolName)'.", isError: true)
        }
        let params: JSONObject
        do {
            params = try target.params(from: arguments["arguments"]?.objectValue ?? [:])
        } catch {
            return ToolOutcome(text: "check: " + Self.argumentError(toolName, error), isError: true)
        }
        let result = try await link.call(tool.method.name, ["method": .string(target.method.name), "params": .object(params)],
                                         timeout: Self.callTimeout, retryable: true)
        let effect = result["effect"]?.stringValue ?? "unknown"
        let rule = result["rule"]?.stringValue
        let reason = result["reason"]?.stringValue
        let riskClass = result["class"]?.stringValue ?? target.method.riskClass?.rawValue ?? "none"
        var text: String
        switch effect {
        case "allow": text = "\(toolName) would be allowed"
        case "ask": text = "\(toolName) would ask a person first"
        case "deny" where reason == "no_agent":
            text = "\(toolName) would be denied: it needs a person's approval and no prompt helper (deskgate-prompt) is running"
        case "deny": text = "\(toolName) would be denied"
        default: text = "\(toolName): the broker answered '\(effect)'"
        }
        text += " (method \(target.method.name), class \(riskClass)"
        if let rule { text += ", rule '\(rule)'" }
        if let reason, !reason.isEmpty { text += ", reason: \(reason)" }
        text += "). Nothing was done."
        return ToolOutcome(text: text, isError: false)
    }

    // MARK: - Formatting

    /// States the daemon's outline leaves out (nearly every widget has them); node lines built
    /// here from JSON nodes leave them out too, so both read alike.
    static let quietStates: Set<String> = [
        "enabled", "sensitive", "visible", "showing", "opaque", "single-line", "horizontal", "vertical",
        "resizable", "selectable-text", "has-tooltip",
    ]

    /// A JSON node as an outline line: `- ROLE "NAME" [ref=REF] (STATES): TEXT`.
    private func describeNode(_ node: JSONValue) -> String {
        var line = "- \(node["role"]?.stringValue ?? "element") \(quoted(node["name"]?.stringValue ?? ""))"
        if let ref = node["ref"]?.stringValue { line += " [ref=\(ref)]" }
        let states = (node["states"]?.arrayValue?.compactMap(\.stringValue) ?? []).filter { !Self.quietStates.contains($0) }
        if !states.isEmpty { line += " (\(states.joined(separator: ", ")))" }
        if node["role"]?.stringValue != "password text", let text = node["text"]?.stringValue, !text.isEmpty {
            line += ": " + String(text.prefix(500)).replacing("\n", with: " ")
        }
        return line
    }

    /// A number as a person writes it (7, not 7.0).
    static func number(_ value: JSONValue) -> String {
        if let i = value.intValue { return String(i) }
        if let d = value.doubleValue { return String(d) }
        return ErrorText.compact(value)
    }

    /// `s` in double quotes, escaped as the daemon's outline does it.
    private func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n", "\r", "\r\n", "\t": out += " "
            default: out.append(ch)
            }
        }
        return out + "\""
    }
}
