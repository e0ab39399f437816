import DeskgateAPI
import JSONRPC
import MCP

/// What the bridge does around a tool's daemon call.
enum ToolKind: Sendable, Equatable {
    case listApps, snapshot, find, readText
    /// `elements.wait`: found or not, and the element's line.
    case wait
    /// A call whose result is deskgate's own words plus, as app content, what the app said
    /// (`browser.navigate`, `daemon.doctor`).
    case plain
    /// An action on the element named by `ref`, or found by `fill_field`; the result reports
    /// the element's new state and a diff of its window's outline.
    case action
    /// Dry run of another tool through `broker.check`.
    case check
}

/// One tool argument: the field the model sees and the daemon param it becomes (nil for an
/// argument the bridge handles itself, such as snapshot's `cursor`).
struct ToolArgument: Sendable {
    var field: Schema.Field
    var param: String?
}

/// An MCP tool, defined by narrowing one deskgate method.
///
/// The input schema is built from the method's own `Schema.Field`s (the same values the
/// dispatcher validates and `rpc.discover` publishes); a tool only picks a subset, renames a
/// field, or restates a default where the tool's differs from the method's.
struct ToolDefinition: Sendable {
    var name: String
    var title: String
    var description: String
    var method: MethodDescriptor
    var kind: ToolKind
    var arguments: [ToolArgument]
    /// Params the bridge sets when the model does not (the tool's own defaults).
    var defaults: JSONObject = [:]
    /// Params the bridge always sets.
    var fixed: JSONObject = [:]

    var fields: [Schema.Field] { arguments.map(\.field) }

    /// Derived from the method's risk class and traits, in one place (``ToolHints``).
    var annotations: Tool.Annotations { ToolHints.annotations(method: method.name, gating: method.gating) }

    /// JSON Schema of the tool's arguments.
    var inputSchema: JSONValue { Schema.object(fields).json }

    var mcpTool: Tool {
        Tool(name: name, title: title, description: description,
             inputSchema: ValueBridge.value(inputSchema), annotations: annotations)
    }

    /// Checks the model's arguments and turns them into the method's params.
    func params(from arguments: JSONObject) throws(RPCError) -> JSONObject {
        try Schema.validateMembers(arguments, fields: fields, additional: false, prefix: "")
        var params = JSONObject()
        for argument in self.arguments {
            if let param = argument.param, let value = arguments[argument.field.name] { params[param] = value }
        }
        for (key, value) in defaults where params[key] == nil { params[key] = value }
        for (key, value) in fixed { params[key] = value }
        return params
    }

    /// The tool argument that carries daemon param `param` (to name it in error messages).
    func argumentName(forParam param: String) -> String? {
        arguments.first { $0.param == param }?.field.name
    }
}

/// The tools deskgate-mcp offers.
struct ToolCatalog: Sendable {
    let tools: [ToolDefinition]

    func tool(named name: String) -> ToolDefinition? { tools.first { $0.name == name } }

    /// Enough for a large web page (an ordinary one has 5,000–10,000 elements); the model gets
    /// it in pages (``SnapshotPaging``), so the limit bounds the daemon's work, not the context.
    static let snapshotDefaultMaxNodes: Int64 = 20_000
    static let findDefaultLimit: Int64 = 50

    static let standard: ToolCatalog = {
        let actionNote = " The result gives the element's new state and the lines of its window's outline that changed."

        var tools: [ToolDefinition] = [
            ToolDefinition(
                name: "list_apps", title: "List apps",
                description: AppsList.summary + " Use an app's name or id as `app` in the other tools.",
                method: AppsList.descriptor, kind: .listApps, arguments: []),
            ToolDefinition(
                name: "snapshot", title: "Snapshot an app",
                description: TreeSnapshot.summary
                    + " Returns the compact outline, one line per element: `- ROLE \"NAME\" [ref=REF] (STATES): TEXT`."
                    + " Pass a ref to read_text, activate, focus, set_text or set_value. Password fields never show their text."
                    + " A field's text appears only where you may read it (class read); elsewhere the line ends in `: [content withheld]` and read_text asks the person."
                    + " A large tree comes in pages of about 800 lines; the result's first lines say how to get the next page (a cursor)."
                    + " A snapshot that is incomplete starts with TRUNCATED and says what to do.",
                method: TreeSnapshot.descriptor, kind: .snapshot,
                arguments: [
                    pick(TreeSnapshot.self, "app"),
                    pick(TreeSnapshot.self, "filter", summary: "interactive (default): only elements that can be operated, and their ancestors; showing: everything on screen; all: the whole tree."),
                    pick(TreeSnapshot.self, "root", summary: "A ref from an earlier result: snapshot only the part of the tree below (and including) that element."),
                    pick(TreeSnapshot.self, "max_nodes", summary: "The most elements to read (default \(snapshotDefaultMaxNodes)); a larger tree is cut off and the result starts with TRUNCATED."),
                    ToolArgument(field: Schema.Field("cursor", .string(maxLength: 64), "Continue an earlier snapshot: the cursor its first line gave for the next page (pass the same app)."), param: nil),
                ],
                defaults: ["filter": "interactive", "max_nodes": .int(snapshotDefaultMaxNodes)],
                fixed: ["format": "outline"]),
            ToolDefinition(
                name: "find", title: "Find elements",
                description: ElementsFind.summary + " Cheaper than a snapshot when you know what you are looking for.",
                method: ElementsFind.descriptor, kind: .find,
                arguments: [
                    pick(ElementsFind.self, "app"), pick(ElementsFind.self, "role"), pick(ElementsFind.self, "name"),
                    pick(ElementsFind.self, "name_contains"),
                ],
                defaults: ["limit": .int(findDefaultLimit)]),
            ToolDefinition(
                name: "read_text", title: "Read an element's text",
                description: TextRead.summary, method: TextRead.descriptor, kind: .readText,
                arguments: [pick(TextRead.self, "ref")]),
            ToolDefinition(
                name: "activate", title: "Activate an element",
                description: ElementActivate.summary + " For a button this is a click." + actionNote,
                method: ElementActivate.descriptor, kind: .action,
                arguments: [pick(ElementActivate.self, "ref"), pick(ElementActivate.self, "action")]),
            ToolDefinition(
                name: "focus", title: "Focus an element",
                description: ElementFocus.summary + actionNote, method: ElementFocus.descriptor, kind: .action,
                arguments: [pick(ElementFocus.self, "ref")]),
            ToolDefinition(
                name: "fill_field", title: "Fill a form field",
                description: FieldFill.summary + " The value is not echoed back (a password field's content is never shown)." + actionNote,
                method: FieldFill.descriptor, kind: .action,
                arguments: [pick(FieldFill.self, "app"), pick(FieldFill.self, "field"),
                            pick(FieldFill.self, "value", summary: "The text the field should hold (replaces what is there).")]),
            ToolDefinition(
                name: "fill_secret", title: "Fill a password from the keyring",
                description: FieldFillSecret.summary
                    + " Use it to log in: you name the keyring item, deskgate types its secret into the password field, and you never see it. A person approves it (or a rule naming the item, this program and the app exactly)." + actionNote,
                method: FieldFillSecret.descriptor, kind: .action,
                arguments: [pick(FieldFillSecret.self, "app"), pick(FieldFillSecret.self, "field"),
                            pick(FieldFillSecret.self, "secret", summary: "Which keyring item: {\"label\": \"…\"} (its exact label) or {\"attributes\": {\"service\": \"…\", \"user\": \"…\"}}.")]),
            ToolDefinition(
                name: "set_text", title: "Set an element's text",
                description: TextSet.summary + " The value is not echoed back (a password field's content is never shown)." + actionNote,
                method: TextSet.descriptor, kind: .action,
                arguments: [pick(TextSet.self, "ref"), pick(TextSet.self, "value", summary: "The text the element should hold (replaces what is there).")]),
            ToolDefinition(
                name: "select", title: "Choose an option",
                description: ElementSelect.summary + " Give option_name or index, not both." + actionNote,
                method: ElementSelect.descriptor, kind: .action,
                arguments: [pick(ElementSelect.self, "ref", summary: "Ref of the combo box or list."),
                            pick(ElementSelect.self, "option_name"), pick(ElementSelect.self, "index")]),
            ToolDefinition(
                name: "insert_text", title: "Insert text",
                description: TextInsert.summary + " The value is not echoed back." + actionNote,
                method: TextInsert.descriptor, kind: .action,
                arguments: [pick(TextInsert.self, "ref"), pick(TextInsert.self, "value"), pick(TextInsert.self, "at")]),
            ToolDefinition(
                name: "scroll_into_view", title: "Scroll an element into view",
                description: ElementScrollIntoView.summary + actionNote,
                method: ElementScrollIntoView.descriptor, kind: .action,
                arguments: [pick(ElementScrollIntoView.self, "ref")]),
            ToolDefinition(
                name: "wait_for", title: "Wait for an element",
                description: ElementsWait.summary + " Use it after an action that loads or opens something, instead of taking snapshots in a loop.",
                method: ElementsWait.descriptor, kind: .wait,
                arguments: [pick(ElementsWait.self, "app"), pick(ElementsWait.self, "role"), pick(ElementsWait.self, "name"),
                            pick(ElementsWait.self, "name_contains"), pick(ElementsWait.self, "gone"),
                            pick(ElementsWait.self, "timeout_ms", summary: "How long to wait, at most 60000 (default 10000).",
                                 required: false)],
                defaults: ["timeout_ms": 10_000]),
            ToolDefinition(
                name: "navigate", title: "Open a URL in a browser",
                description: BrowserNavigate.summary + " Then wait_for an element of the page before reading it.",
                method: BrowserNavigate.descriptor, kind: .plain,
                arguments: [pick(BrowserNavigate.self, "app", summary: "The browser's app name or id (from list_apps)."),
                            pick(BrowserNavigate.self, "url")]),
            ToolDefinition(
                name: "set_value", title: "Set a slider or spin button",
                description: ValueSet.summary + actionNote, method: ValueSet.descriptor, kind: .action,
                arguments: [pick(ValueSet.self, "ref"), pick(ValueSet.self, "value", summary: "The new value, within the element's minimum and maximum.")]),
        ]
        tools.append(ToolDefinition(
            name: "doctor", title: "Diagnose empty or thin trees",
            description: DaemonDoctor.summary + " Ask it when an app shows nothing or far less than its window does.",
            method: DaemonDoctor.descriptor, kind: .plain, arguments: []))
        let checkable = tools.map(\.name)
        tools.append(ToolDefinition(
            name: "check", title: "Check whether a tool call would be allowed",
            description: "Dry run: asks deskgate's permission broker whether calling `tool` with `arguments` would be allowed, would ask a person, or would be denied, and by which rule. Nothing is done and nobody is prompted.",
            method: BrokerCheck.descriptor, kind: .check,
            arguments: [
                pick(BrokerCheck.self, "method", as: "tool", schema: .stringEnum(checkable), summary: "Name of the tool to check.", required: true),
                pick(BrokerCheck.self, "params", as: "arguments", summary: "The arguments the call would carry."),
            ]))
        // Task sessions live as long as this bridge's connection: one approval for a bounded task.
        tools.append(ToolDefinition(
            name: "begin_task", title: "Ask the person to approve a bounded task",
            description: TaskBegin.summary + " Ask once at the start of a multi-step job, naming only what it needs; requests outside the scope are decided as usual. Waits for the person's answer.",
            method: TaskBegin.descriptor, kind: .plain,
            arguments: [pick(TaskBegin.self, "title"), pick(TaskBegin.self, "scope"), pick(TaskBegin.self, "expires_in_s"),
                        pick(TaskBegin.self, "idle_s"), pick(TaskBegin.self, "max_actions")]))
        tools.append(ToolDefinition(
            name: "end_task", title: "End a task", description: TaskEnd.summary + " End it as soon as the job is done.",
            method: TaskEnd.descriptor, kind: .plain, arguments: [pick(TaskEnd.self, "task_id")]))
        return ToolCatalog(tools: tools)
    }()

    /// The field `param` of method `M`, optionally renamed or restated for the tool.
    private static func pick(
        _ method: any APIMethod.Type, _ param: String, as name: String? = nil, schema: Schema? = nil,
        summary: String? = nil, required: Bool? = nil
    ) -> ToolArgument {
        guard var field = method.params.first(where: { $0.name == param }) else {
            preconditionFailure("\(method.name) has no param \(param); DeskgateAPI changed")
        }
        if let name { field.name = name }
        if let schema { field.schema = schema }
        if let summary { field.summary = summary }
        if let required { field.required = required }
        return ToolArgument(field: field, param: param)
    }
}
