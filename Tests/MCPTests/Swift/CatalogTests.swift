import DeskgateAPI
import MCP
import JSONRPC
import Testing
@testable import deskgate_mcp

@Suite("Tool catalog derived from DeskgateAPI")
struct CatalogTests {
    let catalog = ToolCatalog.standard

    @Test("the tools the issue asks for, each backed by its method")
    func names() {
        let expected: [String: String] = [
            "list_apps": "apps.list", "snapshot": "tree.snapshot", "find": "elements.find", "read_text": "text.read",
            "activate": "element.activate", "focus": "element.focus", "fill_field": "field.fill", "set_text": "text.set",
            "set_value": "value.set", "check": "broker.check",
            "select": "element.select", "insert_text": "text.insert", "scroll_into_view": "element.scroll_into_view",
            "wait_for": "elements.wait", "navigate": "browser.navigate", "doctor": "daemon.doctor",
            "begin_task": "task.begin", "end_task": "task.end", "fill_secret": "field.fill_secret",
        ]
        #expect(Dictionary(uniqueKeysWithValues: catalog.tools.map { ($0.name, $0.method.name) }) == expected)
    }

    @Test("every argument's schema is its method param's schema, except check's renamed tool and snapshot's cursor")
    func schemasAreDerived() throws {
        for tool in catalog.tools {
            let method = try #require(DeskgateAPI.descriptor(named: tool.method.name))
            for argument in tool.arguments {
                guard let name = argument.param else {
                    // The bridge's own argument: paging through a snapshot it keeps.
                    #expect(tool.name == "snapshot" && argument.field.name == "cursor", "\(tool.name).\(argument.field.name)")
                    continue
                }
                let param = try #require(method.fields.first { $0.name == name }, "\(tool.name).\(argument.field.name)")
                if tool.name == "check" && argument.field.name == "tool" {
                    // Every tool before check: not check itself, not the task tools (no dry run of a prompt).
                    #expect(argument.field.schema == .stringEnum(catalog.tools.map(\.name).filter { !["check", "begin_task", "end_task"].contains($0) }))
                } else {
                    #expect(argument.field.schema == param.schema, "\(tool.name).\(argument.field.name)")
                    // A param the tool gives a default of its own may be left out by the model.
                    #expect(argument.field.required == param.required || (param.required && tool.defaults[name] != nil),
                            "\(tool.name).\(argument.field.name)")
                }
            }
            #expect(!tool.fields.contains { $0.name == "interactive" }, "\(tool.name) exposes interactive")
            guard case .object(let schema) = tool.inputSchema else { Issue.record("not an object"); continue }
            #expect(schema["additionalProperties"] == .bool(false))
        }
    }

    @Test("every tool's annotations follow its method's risk class")
    func annotationsFollowRiskClass() {
        for tool in catalog.tools {
            let hints = tool.annotations
            switch tool.method.riskClass {
            case .observe?, .read?:
                #expect(hints.readOnlyHint == true && hints.destructiveHint == false, "\(tool.name): \(hints)")
            case .act?, .write?, .secret?:
                #expect(hints.readOnlyHint == false && hints.destructiveHint == true, "\(tool.name): \(hints)")
            case .admin?, .control?:
                Issue.record("\(tool.name): no tool should carry an admin or control method")
            case nil where tool.name == "check":
                // A dry run changes nothing.
                #expect(hints.readOnlyHint == true && hints.destructiveHint == false, "\(tool.name): \(hints)")
            case nil:
                // The other ungated tools are the task session's: they change what later calls may do.
                #expect(["begin_task", "end_task"].contains(tool.name) && hints.readOnlyHint == false, "\(tool.name): \(hints)")
            }
            // Only loading a URL reaches beyond the desktop.
            #expect(hints.openWorldHint == (tool.name == "navigate"), "\(tool.name): \(hints)")
            // Repeating a write of the same value, a focus, a choice or a read changes nothing
            // more; a click may toggle, submit twice or open another window, an insert adds the
            // text again, a navigation loads the page again.
            // Each begin_task asks again and starts another task.
            #expect(hints.idempotentHint == !["activate", "insert_text", "navigate", "begin_task"].contains(tool.name), "\(tool.name): \(hints)")
        }
    }

    @Test("every tool's method has its traits written down; a method without them gets MCP's cautious defaults")
    func traitsAreExplicit() {
        for tool in catalog.tools {
            #expect(ToolHints.traits[tool.method.name] != nil, "\(tool.name): no MethodTraits for \(tool.method.name)")
        }
        let unknown = ToolHints.annotations(method: "some.future_method", gating: .ungated)
        #expect(unknown.readOnlyHint == false && unknown.destructiveHint == true)
        #expect(unknown.idempotentHint == false && unknown.openWorldHint == true)
    }

    @Test("the rule can say open world: browser.navigate reaches the web")
    func openWorld() {
        let navigate = ToolHints.annotations(method: "browser.navigate", gating: .gated(.act))
        #expect(navigate.openWorldHint == true)
        #expect(navigate.readOnlyHint == false && navigate.destructiveHint == true && navigate.idempotentHint == false)
        // The class, not the method name, decides read-only: the same method gated as observe would be.
        #expect(ToolHints.annotations(method: "browser.navigate", gating: .gated(.observe)).readOnlyHint == true)
    }

    @Test("snapshot defaults to an interactive outline; the model's values win")
    func snapshotParams() throws {
        let snapshot = try #require(catalog.tool(named: "snapshot"))
        let defaults = try snapshot.params(from: ["app": "gedit"])
        #expect(defaults["filter"] == "interactive")
        #expect(defaults["format"] == "outline")
        #expect(defaults["max_nodes"] == .int(ToolCatalog.snapshotDefaultMaxNodes))
        let chosen = try snapshot.params(from: ["app": "gedit", "filter": "all", "max_nodes": 10, "root": "r1", "cursor": "s1p2"])
        #expect(chosen["filter"] == "all")
        #expect(chosen["max_nodes"] == 10)
        #expect(chosen["root"] == "r1")
        // The cursor is the bridge's: it never reaches the daemon.
        #expect(chosen["cursor"] == nil)
        // An ordinary web page (5,000-10,000 elements) is not cut by default.
        #expect(ToolCatalog.snapshotDefaultMaxNodes >= 10_000)
    }

    @Test("unknown, missing and mistyped arguments name the argument")
    func argumentErrors() throws {
        let fill = try #require(catalog.tool(named: "fill_field"))
        #expect(throws: RPCError.self) { try fill.params(from: ["app": "a", "field": "f"]) }
        do {
            _ = try fill.params(from: ["app": "a", "field": "f", "value": "v", "format": "json"])
            Issue.record("accepted an unknown argument")
        } catch {
            #expect(error.data?["field"] == "format")
        }
        let snapshot = try #require(catalog.tool(named: "snapshot"))
        do {
            _ = try snapshot.params(from: ["app": "a", "format": "json"])
            Issue.record("the model could override a fixed param")
        } catch {
            #expect(error.data?["field"] == "format")
        }
    }
}
