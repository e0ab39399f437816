import DeskgateAPI
import JSONRPC
import Testing

@Suite("Params validation and the method table")
struct SchemaTests {
    @Test("unknown params are named, missing and mistyped ones too")
    func strictParams() throws {
        let fields = TreeSnapshot.fields
        func error(_ params: JSONValue) -> RPCError? {
            do { _ = try ParamsObject(validating: params, fields: fields); return nil } catch { return error }
        }
        #expect(error(["app": "x", "max_nodse": 5])?.data?["field"] == "max_nodse")
        #expect(error(["max_nodes": 5])?.data?["field"] == "app")
        #expect(error(["app": 5])?.data?["field"] == "app")
        #expect(error(["app": "x", "filter": "some"])?.data?["field"] == "filter")
        #expect(error(["app": "x", "include": ["bounds", 3]])?.data?["field"] == "include[1]")
        #expect(error(["app": "x", "max_nodes": 0])?.data?["field"] == "max_nodes")
        #expect(error(["app": "x", "interactive": false]) == nil)
        #expect(error(.array([.string("x")]))?.code == .invalidParams)
        #expect(error(["app": "x", "max_depth": 3.0]) == nil)
    }

    @Test("gated methods accept the reserved interactive param; ungated ones do not")
    func interactive() {
        for method in DeskgateAPI.methods {
            let hasInteractive = method.fields.contains { $0.name == "interactive" }
            #expect(hasInteractive == (method.riskClass != nil), "\(method.name)")
        }
    }

    @Test("risk classes match the broker contract")
    func classes() {
        let expected: [String: RiskClass?] = [
            "apps.list": .observe, "tree.snapshot": .observe, "elements.find": .observe, "element.get": .observe,
            "events.subscribe": .observe, "text.read": .read, "element.activate": .act, "element.focus": .act,
            "text.set": .write, "field.fill": .write, "field.fill_secret": .secret, "value.set": .write, "grants.list": .admin,
            "audit.query": .admin, "audit.verify": .admin, "daemon.ping": nil, "daemon.info": nil,
            "session.hello": nil, "session.whoami": nil, "rpc.discover": nil, "agent.register": nil, "broker.check": nil,
            "grants.revoke": nil, "grants.revoke_all": nil,
        ]
        for (name, cls) in expected {
            #expect(DeskgateAPI.descriptor(named: name)?.riskClass == cls, "\(name)")
        }
        #expect(Set(DeskgateAPI.methods.map { $0.name }).count == DeskgateAPI.methods.count)
    }

    @Test("the OpenRPC document lists every method with its params")
    func openRPC() throws {
        let doc = OpenRPC.document(methods: DeskgateAPI.descriptors, version: "t")
        let methods = try #require(doc["methods"]?.arrayValue)
        #expect(methods.count == DeskgateAPI.methods.count)
        let snapshot = try #require(methods.first { $0["name"] == "tree.snapshot" })
        let params = try #require(snapshot["params"]?.arrayValue).compactMap { $0["name"]?.stringValue }
        #expect(params.contains("max_nodes") && params.contains("interactive"))
        #expect(doc["openrpc"]?.stringValue?.hasPrefix("1.") == true)
    }
}
