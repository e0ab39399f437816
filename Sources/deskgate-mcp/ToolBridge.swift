import DeskgateAPI
import DeskgateClient
import JSONRPC
import Logging

/// Runs MCP tool calls as deskgate requests and words their results for a language model.
///
/// Every result is a ``ToolOutcome``: deskgate's own words, and apart from them, in fences,
/// whatever an app chose (names, text, titles). See docs/mcp.md, "What comes from apps".
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
            return ToolOutcome(text: "Unknown tool \(Quote.quoted(name)). Tools: \(catalog.tools.map(\.name).joined(separator: ", ")).", isError: true)
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
            case .snapshot: outcome = try await snapshot(tool, arguments, params)
            case .find: outcome = try await find(tool, params)
            case .readText: outcome = try await readText(tool, params)
            case .wait: outcome = try await wait(tool, params)
            case .plain: outcome = try await plain(tool, params)
            case .action: outcome = try await action(tool, params)
            case .check: outcome = try await check(tool, arguments)
            }
        } catch {
            logger.debug("tool \(name) failed: \(error)")
            outcome = ErrorText.describe(error, subject: subject, tool: tool)
        }
        // Secrets are replaced in the raw texts, before any escaping could split them.
        return outcome.mapTexts(memory.scrub)
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
        guard let apps = result.arrayValue else {
            return ToolOutcome(text: "deskgated answered apps.list with something unexpected; it follows as app content.",
                               appContent: [AppContent(kind: .apps, text: ErrorText.compact(result))], isError: true)
        }
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
            if let toolkit = app["toolkit"]?.stringValue, !toolkit.isEmpty { facts.append("toolkit \(Quote.plain(toolkit))") }
            if let exe = app["exe"]?.stringValue, !exe.isEmpty { facts.append(exe) }
            lines.append("\(Quote.plain(name)) (\(facts.joined(separator: ", ")))")
            for window in app["windows"]?.arrayValue ?? [] {
                let ref = window["ref"]?.stringValue
                let role = Quote.vocabulary(window["role"]?.stringValue, fallback: "window")
                var line = "  - \(role) \(Quote.plain(window["name"]?.stringValue ?? ""))"
                if let ref { line += " [ref=\(ref)]" }
                if window["active"]?.boolValue == true { line += " (active)" }
                lines.append(line)
                if let ref { scopes[ref] = RefScope(app: id, window: ref, windowName: window["name"]?.stringValue) }
            }
        }
        memory.remember(scopes)
        return ToolOutcome(
            text: "Apps deskgate-mcp may observe: \(apps.count), listed with their windows as app content below. Each app's name, window titles and toolkit are what the app says about itself; id, pid and executable are what deskgate verified. Use an app's id or name as `app` in the other tools.",
            appContent: [AppContent(kind: .apps, text: lines.joined(separator: "\n"))], isError: false)
    }

    private func snapshot(_ tool: ToolDefinition, _ arguments: JSONObject, _ params: JSONObject) async throws -> ToolOutcome {
        let app = params["app"]?.stringValue ?? ""
        if let cursor = arguments["cursor"]?.stringValue {
            return nextPage(cursor: cursor, arguments: arguments, params: params)
        }
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        let lines = OutlineLine.parse(result["outline"]?.stringValue ?? "")
        var scopes = OutlineScopes.scopes(of: lines, app: result["app"]?.stringValue ?? app)
        if let root = params["root"]?.stringValue, let known = memory.scope(of: root) {
            // A subtree read starts below its window; keep the window we know.
            scopes = scopes.mapValues { found in
                found.window == nil ? RefScope(app: known.app, window: known.window, windowName: known.windowName, role: found.role) : found
            }
        }
        memory.remember(scopes)
        let maxNodes = params["max_nodes"]?.intValue ?? ToolCatalog.snapshotDefaultMaxNodes
        let kept: JSONObject = JSONObject(["app", "filter", "max_nodes", "root"].compactMap { key in params[key].map { (key, $0) } })
        let read = memory.snapshots.store(params: kept, lines: lines.map(\.text),
                                          truncation: Truncation(result: result, maxNodes: maxNodes, nodes: lines.count))
        return SnapshotText.page(read, page: 1, app: app)
    }

    /// A later page of a snapshot the session read before.
    private func nextPage(cursor: String, arguments: JSONObject, params: JSONObject) -> ToolOutcome {
        guard let (id, page) = SnapshotPaging.parse(cursor: cursor), memory.snapshots.issued(id: id) else {
            return ToolOutcome(text: "Invalid arguments for snapshot: 'cursor': \(Quote.quoted(cursor)) is not a cursor a snapshot of this session gave. Take a new snapshot without cursor.", isError: true)
        }
        guard let read = memory.snapshots.read(id: id) else {
            return ToolOutcome(text: "The snapshot this cursor continues is no longer kept (deskgate-mcp keeps the pages of the last \(SnapshotStore.kept) large snapshots). Take a new snapshot without cursor.", isError: true)
        }
        // The call must be about the same read: the same app, and any other argument as it was.
        for key in ["app", "filter", "max_nodes", "root"] where key == "app" || arguments[key] != nil {
            guard params[key] == read.params[key] else {
                let was = read.params[key].map { $0.stringValue.map(Quote.quoted) ?? ErrorText.compact($0) } ?? "none"
                return ToolOutcome(text: "Invalid arguments for snapshot: '\(key)': the cursor continues a snapshot with \(key) \(was). Pass the same value (or leave it out), or take a new snapshot without cursor.", isError: true)
            }
        }
        guard page <= read.pages.count else {
            return ToolOutcome(text: "Invalid arguments for snapshot: 'cursor': that snapshot has only \(read.pages.count) page\(read.pages.count == 1 ? "" : "s").", isError: true)
        }
        return SnapshotText.page(read, page: page, app: params["app"]?.stringValue ?? "")
    }

    private func find(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        let nodes = result["nodes"]?.arrayValue ?? []
        let app = params["app"]?.stringValue ?? ""
        if nodes.isEmpty { return ToolOutcome(text: "No matching elements in \(Quote.quoted(app)).", isError: false) }
        var scopes: [String: RefScope] = [:]
        var lines: [String] = []
        for node in nodes {
            lines.append(Self.describeNode(node))
            if let ref = node["ref"]?.stringValue, memory.scope(of: ref) == nil { scopes[ref] = RefScope(app: app, role: node["role"]?.stringValue) }
        }
        memory.remember(scopes)
        let text = "\(nodes.count) matching element\(nodes.count == 1 ? "" : "s") in \(Quote.quoted(app))"
            + (result["truncated"]?.boolValue == true ? " (more exist; narrow the search)" : "")
            + "; their outline lines follow as app content."
        return ToolOutcome(text: text, appContent: [AppContent(kind: .elements, app: app, text: lines.joined(separator: "\n"))],
                           isError: false)
    }

    private func readText(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: true)
        let ref = Quote.bare(params["ref"]?.stringValue ?? "")
        let app = params["ref"]?.stringValue.flatMap(memory.scope(of:))?.app
        guard let text = result["text"]?.stringValue else {
            return ToolOutcome(text: "deskgated answered text.read with something unexpected; it follows as app content.",
                               appContent: [AppContent(kind: .text, app: app, text: ErrorText.compact(result))], isError: true)
        }
        if text.isEmpty { return ToolOutcome(text: "Element [ref=\(ref)] holds no text.", isError: false) }
        return ToolOutcome(text: "The text of element [ref=\(ref)] (\(text.count) characters) follows as app content, exactly as the app holds it.",
                           appContent: [AppContent(kind: .text, app: app, text: text)], isError: false)
    }

    private func wait(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let timeoutMs = params["timeout_ms"]?.intValue ?? 10_000
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout + .milliseconds(timeoutMs),
                                         retryable: true)
        let app = params["app"]?.stringValue ?? ""
        let waited = result["waited_ms"]?.intValue ?? 0
        let gone = params["gone"]?.boolValue == true
        guard result["found"]?.boolValue == true else {
            return ToolOutcome(text: gone ? "Something still matched in \(Quote.quoted(app)) after \(waited) ms."
                                          : "Nothing matched in \(Quote.quoted(app)) within \(waited) ms.", isError: false)
        }
        guard let node = result["node"] else {
            return ToolOutcome(text: "No element matches in \(Quote.quoted(app)) any more (after \(waited) ms).", isError: false)
        }
        if let ref = node["ref"]?.stringValue, memory.scope(of: ref) == nil {
            memory.remember([ref: RefScope(app: app, role: node["role"]?.stringValue)])
        }
        return ToolOutcome(text: "An element matched in \(Quote.quoted(app)) after \(waited) ms; its outline line follows as app content.",
                           appContent: [AppContent(kind: .elements, app: app, text: Self.describeNode(node))], isError: false)
    }

    /// deskgate's sentence, and the daemon's answer as app content (it names apps and pages).
    private func plain(_ tool: ToolDefinition, _ params: JSONObject) async throws -> ToolOutcome {
        let result = try await link.call(tool.method.name, params, timeout: Self.callTimeout, retryable: false)
        switch tool.name {
        case "navigate":
            let url = params["url"]?.stringValue ?? ""
            return ToolOutcome(text: "Asked \(Quote.quoted(params["app"]?.stringValue ?? "the browser")) to open \(Quote.quoted(url)) in a new tab. Use wait_for to know when the page is there.",
                               isError: result["ok"]?.boolValue == false)
        case "begin_task":
            let id = Quote.bare(result["task_id"]?.stringValue ?? "?")
            return ToolOutcome(text: "The person approved the task: task_id \(id), until \(Quote.bare(result["expires_at"]?.stringValue ?? "?")). Calls inside its scope now run without prompts; call end_task with this id when the job is done.",
                               isError: false)
        case "end_task":
            let ended = result["ended"]?.boolValue == true
            return ToolOutcome(text: ended ? "The task ended." : "No live task of yours has that id (it may have expired or been revoked).",
                               isError: !ended)
        case "doctor":
            let findings = result["findings"]?.arrayValue ?? []
            let lines = findings.map { finding -> String in
                var line = "[\(finding["status"]?.stringValue ?? "?")] \(finding["message"]?.stringValue ?? "")"
                if let advice = finding["advice"]?.stringValue { line += " -> \(advice)" }
                return line
            }
            return ToolOutcome(text: "\(findings.count) findings, the worst: \(Quote.vocabulary(result["status"]?.stringValue, fallback: "unknown")). They follow as app content (they quote app names).",
                               appContent: [AppContent(kind: .result, text: lines.joined(separator: "\n"))], isError: false)
        default:
            return ToolOutcome(text: "Done: \(tool.name). The daemon's answer follows as app content.",
                               appContent: [AppContent(kind: .result, text: ErrorText.compact(result))], isError: false)
        }
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
        return Self.actionOutcome(tool: tool.name, params: params, result: result, ref: ref, element: element,
                                  role: role, scope: scope, changes: changes)
    }

    /// What an action's result says: deskgate's sentence (what was done, to which ref, and
    /// whether anything else changed), and as app content the element's line now, the action
    /// the app performed and the changed lines of the window.
    static func actionOutcome(
        tool: String, params: JSONObject, result: JSONValue, ref: String?, element: OutlineLine?, role: String?,
        scope: RefScope?, changes: [OutlineDiff.Change]?
    ) -> ToolOutcome {
        var own: [String] = []
        var app: [String] = []
        // Role names are AT-SPI's fixed vocabulary, refs deskgate's: both may be deskgate's words.
        let kind = Quote.vocabulary(element?.role ?? role, fallback: "element")
        let short = ref.map { "\(kind) [ref=\(Quote.bare($0))]" } ?? "the element"
        switch tool {
        case "activate":
            let how = params["action"]?.stringValue.map { "with action \(Quote.quoted($0))" } ?? "with its default action"
            own.append("Activated \(short) \(how).")
            if let action = result["action"]?.stringValue { app.append("action performed: \(action)") }
        case "focus":
            own.append("Focused \(short).")
        case "fill_field", "set_text":
            // fill_field names the field in the model's words; the daemon found it and says which.
            let did = params["field"]?.stringValue.map { "Filled field \(Quote.quoted($0)), \(short)," } ?? "Set the text of \(short)"
            let length = result["length"]?.intValue.map { " with \($0) characters" } ?? ""
            switch result["matches"]?.boolValue {
            case true?: own.append("\(did)\(length); it now holds the value.")
            case false?: own.append("\(did)\(length), but it does not hold the value afterwards (the app may have changed or rejected it).")
            case nil: own.append("\(did)\(length).")
            }
        case "set_value":
            let value = result["value"].map(Self.number) ?? "?"
            own.append("Set the value of \(short); it is now \(value).")
        case "select":
            let index = result["index"]?.intValue.map { " (index \($0))" } ?? ""
            own.append(result["ok"]?.boolValue == true ? "Chose an option\(index) of \(short); it reads as selected."
                                                       : "Asked \(short) to choose an option\(index), but it does not read as selected afterwards.")
            if let option = result["option"]?.stringValue { app.append("option: \(option)") }
        case "insert_text":
            let length = result["length"]?.intValue.map { "; it now holds \($0) characters" } ?? ""
            own.append(result["matches"]?.boolValue == false ? "Inserted text into \(short), but its length did not grow as expected."
                                                              : "Inserted the text into \(short)\(length).")
        case "scroll_into_view":
            own.append(result["in_view"]?.boolValue == false ? "Asked the app to scroll \(short) into view, but it does not read as on screen."
                                                              : "Scrolled \(short) into view.")
        default:
            own.append("Done: \(tool) on \(short).")
        }
        if result["settled"]?.boolValue == false {
            own.append("The app had not shown the change this action makes within 1 s; the states below may be the old ones.")
        }
        if let element {
            app.append("element now: " + element.key(withRef: true))
        } else if let states = result["states"]?.arrayValue?.compactMap(\.stringValue) {
            app.append("states now: " + (states.isEmpty ? "none" : states.joined(separator: ", ")))
        }
        let place: String
        if let window = scope?.window {
            place = "its window [ref=\(Quote.bare(window))]"
        } else if let scope {
            place = "app \(Quote.quoted(scope.app))"
        } else {
            place = "the window"
        }
        switch changes {
        case nil where scope == nil:
            own.append("(No outline diff: this ref was not seen in a snapshot of this session.)")
        case nil:
            own.append("(No outline diff: \(place) could not be read before and after the action.)")
        case let changes? where changes.isEmpty:
            own.append("Nothing else changed in \(place).")
        case let changes?:
            own.append("\(changes.count) line\(changes.count == 1 ? "" : "s") of \(place) changed.")
            let title = scope?.windowName.map { "window \(Quote.plain($0)) [ref=\(scope?.window ?? "")]" } ?? place
            app.append("changes in \(title):")
            app.append(OutlineDiff.render(changes))
        }
        if !app.isEmpty {
            own.append("The element as it is now" + (changes?.isEmpty == false ? " and the changed lines" : "") + " follow as app content.")
        }
        return ToolOutcome(text: own.joined(separator: "\n"),
                           appContent: [AppContent(kind: .result, app: scope?.app ?? params["app"]?.stringValue, text: app.joined(separator: "\n"))],
                           isError: result["ok"]?.boolValue == false)
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
            return OutlineLine(Self.describeNode(node))
        } catch {
            logger.debug("element.get after action failed: \(error)")
            return nil
        }
    }

    // MARK: - Check

    private func check(_ tool: ToolDefinition, _ arguments: JSONObject) async throws -> ToolOutcome {
        let toolName = arguments["tool"]?.stringValue ?? ""
        guard let target = catalog.tool(named: toolName), target.kind != .check else {
            return ToolOutcome(text: "check: unknown tool \(Quote.quoted(toolName)).", isError: true)
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

    /// A JSON node as an outline line: `- ROLE "NAME" [ref=REF] (STATES): TEXT`, written as the
    /// daemon writes its outline.
    static func describeNode(_ node: JSONValue) -> String {
        var line = "- \(Quote.vocabulary(node["role"]?.stringValue, fallback: "element")) \(Quote.plain(node["name"]?.stringValue ?? ""))"
        if let ref = node["ref"]?.stringValue { line += " [ref=\(Quote.bare(ref))]" }
        let states = (node["states"]?.arrayValue?.compactMap(\.stringValue) ?? []).filter { !Self.quietStates.contains($0) }
        if !states.isEmpty { line += " (\(states.map { Quote.vocabulary($0, fallback: "?") }.joined(separator: ", ")))" }
        if node["role"]?.stringValue != "password text", let text = node["text"]?.stringValue, !text.isEmpty {
            line += ": " + Quote.plain(String(text.prefix(500))).dropFirst().dropLast()
        }
        return line
    }

    /// A number as a person writes it (7, not 7.0); anything else as "?".
    static func number(_ value: JSONValue) -> String {
        if let i = value.intValue { return String(i) }
        if let d = value.doubleValue { return String(d) }
        return "?"
    }
}
