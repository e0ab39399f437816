public import JSONRPC

// Seeing apps: listings, trees, elements, text and events.

public enum AppsList: APIMethod {
    public static let name = "apps.list"
    public static let summary = "Running accessible apps the caller may observe (by a rule or a remembered grant; listing never prompts), with their windows."
    public static let result = Schema.arrayOf(.object([
        .init("id", .string, required: true), .init("name", .string, required: true),
        .init("pid", .integer, required: true), .init("exe", .string), .init("toolkit", .string),
        .init("windows", .arrayOf(.object([.init("ref", .string), .init("name", .string), .init("role", .string), .init("active", .boolean)]))),
    ], additional: true))
    public static let gating = Gating.filteredPerApp(.observe)
    public static let errors: [ErrorCode] = [.busUnavailable]
    public typealias Result = [Entry]

    /// One app of the listing.
    public struct Entry: Sendable, Hashable {
        public var id: String
        public var name: String
        public var pid: Int32
        public var exe: String?
        public var toolkit: String
        public var windows: [Window]
        public var responding: Bool

        public struct Window: Sendable, Hashable {
            public var ref: String
            public var name: String
            public var role: String
            public var active: Bool
            public init(ref: String, name: String, role: String, active: Bool) {
                self.ref = ref
                self.name = name
                self.role = role
                self.active = active
            }
        }

        public init(id: String, name: String, pid: Int32, exe: String?, toolkit: String, windows: [Window], responding: Bool) {
            self.id = id
            self.name = name
            self.pid = pid
            self.exe = exe
            self.toolkit = toolkit
            self.windows = windows
            self.responding = responding
        }

        public var json: JSONValue {
            var object: JSONObject = [
                "id": .string(id), "name": .string(name), "pid": .int(Int64(pid)),
                "exe": exe.map(JSONValue.string) ?? .null, "toolkit": .string(toolkit),
            ]
            object.append("windows", .array(windows.map { window in
                ["ref": .string(window.ref), "name": .string(window.name), "role": .string(window.role),
                 "active": .bool(window.active)]
            }))
            if !responding { object.append("responding", false) }
            return .object(object)
        }
    }
}

extension Array: APIResult where Element == AppsList.Entry {
    public var reply: APIReply { .value(.array(map(\.json))) }
}

public enum TreeSnapshot: APIMethod {
    public static let name = "tree.snapshot"
    public static let summary = "The app's accessibility tree as a flat depth-first list of nodes, or as a compact outline."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("root", .string, "Ref of the subtree root (default: the app)."),
        .init("max_depth", .integer(minimum: 0, maximum: 1000)),
        .init("max_nodes", .integer(minimum: 1, maximum: 100_000), "Default 5000; larger trees return truncated: true."),
        .init("filter", .stringEnum(["all", "showing", "interactive"]), "Default all."),
        .init("format", .stringEnum(["json", "outline"]), "Default json."),
        .init("include", .arrayOf(.stringEnum(["bounds", "actions", "text", "value"])), "Extra fields, each costing extra calls. text and value (and the outline's text) appear only where the caller may read (class read); elsewhere the node says content_withheld."),
    ]
    public static let result = Schema.object([
        .init("app", .string, required: true),
        .init("nodes", .arrayOf(APISchemas.node)),
        .init("outline", .string),
        .init("truncated", .boolean, required: true),
        .init("stats", .object([.init("nodes", .integer), .init("ms", .number)], additional: true)),
    ], additional: true)
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.appNotFound, .elementNotFound, .appNotResponding, .busUnavailable, .ambiguous]
    /// Thousands of nodes: written straight into the reply.
    public typealias Result = EncodedJSON

    public enum Filter: String, Sendable { case all, showing, interactive }
    public enum Format: String, Sendable { case json, outline }

    public struct Params: APIParams {
        public var app: String
        public var root: String?
        public var maxDepth: Int?
        public var maxNodes: Int
        public var filter: Filter
        public var format: Format
        public var include: [String]
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            root = try p.optionalString("root")
            maxDepth = try p.optionalInt("max_depth")
            maxNodes = try p.int("max_nodes", default: 5000)
            filter = Filter(rawValue: try p.optionalString("filter") ?? "all") ?? .all
            format = Format(rawValue: try p.optionalString("format") ?? "json") ?? .json
            include = try p.stringArray("include") ?? []
        }
    }
}

public enum ElementsFind: APIMethod {
    public static let name = "elements.find"
    public static let summary = "Elements of an app matching role, name and states."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("role", .string, "AT-SPI role name, e.g. \"push button\"."),
        .init("name", .string, "Exact name."),
        .init("name_contains", .string, "Case-insensitive substring of the name."),
        .init("states", .arrayOf(.string), "States the element must all have."),
        .init("limit", .integer(minimum: 1, maximum: 10_000), "Default 100."),
    ]
    public static let result = Schema.object([.init("nodes", .arrayOf(APISchemas.node), required: true), .init("truncated", .boolean)], additional: true)
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.appNotFound, .appNotResponding, .busUnavailable, .ambiguous]

    public struct Params: APIParams {
        public var app: String
        public var role: String?
        public var name: String?
        public var nameContains: String?
        public var states: [String]
        public var limit: Int
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            role = try p.optionalString("role")
            name = try p.optionalString("name")
            nameContains = try p.optionalString("name_contains")
            states = try p.stringArray("states") ?? []
            limit = try p.int("limit", default: 100)
        }
    }
}

/// The params of methods that name one element by its ref.
public struct RefParams: APIParams {
    public var ref: String
    public init(_ p: ParamsObject) throws(RPCError) { ref = try p.string("ref") }
}

public enum ElementGet: APIMethod {
    public static let name = "element.get"
    public static let summary = "One element with bounds, actions and relations, and its text and value where the caller may read it (class read; never for password fields)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = APISchemas.node
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.elementNotFound, .appNotFound, .appNotResponding]
    public typealias Params = RefParams
}

public enum TextRead: APIMethod {
    public static let name = "text.read"
    public static let summary = "The text of an element. Password fields are always denied (hard_deny)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([.init("text", .string, required: true)], additional: true)
    public static let gating = Gating.gated(.read)
    public static let errors: [ErrorCode] = [.denied, .elementNotFound, .notSupported, .appNotResponding]
    public typealias Params = RefParams

    public struct Result: APIResult {
        public var text: String
        public init(text: String) { self.text = text }
        public var reply: APIReply { .value(["text": .string(text)]) }
    }
}

public enum ElementsWait: APIMethod {
    public static let name = "elements.wait"
    public static let summary = "Waits until an element of the app matches role, name and states (with gone: until none does), up to timeout_ms. Woken by the app's events, with one last look at the deadline; a timeout is a normal result (found: false)."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("role", .string, "AT-SPI role name, e.g. \"push button\"."),
        .init("name", .string, "Exact name (a field's label, for unnamed fields)."),
        .init("name_contains", .string, "Case-insensitive substring of the name."),
        .init("states", .arrayOf(.string), "States the element must all have."),
        .init("gone", .boolean, "Wait until no element matches (default false)."),
        .init("timeout_ms", .integer(minimum: 0, maximum: 60_000), required: true, "At most 60000."),
    ]
    public static let result = Schema.object([
        .init("found", .boolean, required: true, "The condition held (an element matched; with gone, none did)."),
        .init("node", APISchemas.node, "The first matching element (not with gone)."),
        .init("waited_ms", .integer, required: true),
    ], additional: true)
    public static let gating = Gating.gated(.observe)
    public static let errors: [ErrorCode] = [.appNotFound, .appNotResponding, .busUnavailable, .ambiguous]

    public struct Params: APIParams {
        public var app: String
        public var role: String?
        public var name: String?
        public var nameContains: String?
        public var states: [String]
        public var gone: Bool
        public var timeoutMs: Int
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            role = try p.optionalString("role")
            name = try p.optionalString("name")
            nameContains = try p.optionalString("name_contains")
            states = try p.stringArray("states") ?? []
            gone = try p.bool("gone", default: false)
            timeoutMs = try p.int("timeout_ms")
        }
    }
}
