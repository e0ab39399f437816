public import JSONRPC

// Acting on elements: bounded, typed actions, each decided on its one target.

public enum ElementActivate: APIMethod {
    public static let name = "element.activate"
    public static let summary = "Performs an element's action (default: its first) and returns its states afterwards."
    public static let params: [Schema.Field] = [APIFields.ref, .init("action", .string, "Action name, e.g. \"click\".")]
    public static let result = Schema.object([
        .init("ok", .boolean), .init("action", .string), .init("states", .arrayOf(.string)),
        .init("settled", .boolean, "False when a state the action should change (checked, pressed, expanded) had not changed after 1 s."),
    ], additional: true)
    public static let gating = Gating.gated(.act)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var action: String?
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            action = try p.optionalString("action")
        }
    }

    public struct Result: APIResult {
        public var ok: Bool
        public var action: String
        public var states: [String]
        public var settled: Bool
        public init(ok: Bool, action: String, states: [String], settled: Bool = true) {
            self.ok = ok
            self.action = action
            self.states = states
            self.settled = settled
        }
        public var reply: APIReply {
            .value(["ok": .bool(ok), "action": .string(action), "states": JSONValue(states), "settled": .bool(settled)])
        }
    }
}

public enum ElementFocus: APIMethod {
    public static let name = "element.focus"
    public static let summary = "Moves keyboard focus to an element (Component.GrabFocus)."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([
        .init("ok", .boolean), .init("states", .arrayOf(.string)),
        .init("settled", .boolean, "False when the element was not focused after 1 s."),
    ], additional: true)
    public static let gating = Gating.gated(.act)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
    public typealias Params = RefParams

    public struct Result: APIResult {
        public var ok: Bool
        public var states: [String]
        public var settled: Bool
        public init(ok: Bool, states: [String], settled: Bool = true) {
            self.ok = ok
            self.states = states
            self.settled = settled
        }
        public var reply: APIReply { .value(["ok": .bool(ok), "states": JSONValue(states), "settled": .bool(settled)]) }
    }
}

public enum TextSet: APIMethod {
    public static let name = "text.set"
    public static let summary = "Replaces an editable element's text and reports whether the field now holds it."
    public static let params: [Schema.Field] = [APIFields.ref, .init("value", .string(maxLength: 1 << 20), required: true)]
    public static let result = Schema.object([.init("ok", .boolean), .init("matches", .boolean), .init("length", .integer)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let auditedText: String? = "value"
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var value: String
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            value = try p.string("value")
        }
    }

    /// Also `field.fill`'s result, which adds the field's ref.
    public struct Result: APIResult {
        public var ok: Bool
        public var matches: Bool
        public var length: Int
        /// The field filled (`field.fill` only).
        public var ref: String?
        public init(ok: Bool, matches: Bool, length: Int, ref: String? = nil) {
            self.ok = ok
            self.matches = matches
            self.length = length
            self.ref = ref
        }
        public var reply: APIReply {
            var object: JSONObject = [:]
            if let ref { object.append("ref", .string(ref)) }
            object.append("ok", .bool(ok))
            object.append("matches", .bool(matches))
            object.append("length", .int(Int64(length)))
            return .value(.object(object))
        }
    }
}

public enum FieldFill: APIMethod {
    public static let name = "field.fill"
    public static let summary = "Finds the editable field named or labelled `field` and sets its text."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("field", .string, required: true, "The field's label (or name): exact first, then ignoring case, extra whitespace and a trailing colon. The broker decides on the field found."),
        .init("value", .string(maxLength: 1 << 20), required: true),
    ]
    public static let result = Schema.object([.init("ref", .string), .init("ok", .boolean), .init("matches", .boolean)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let auditedText: String? = "value"
    public static let errors: [ErrorCode] = [.appNotFound, .elementNotFound, .ambiguous, .notSupported, .appNotResponding]
    public typealias Result = TextSet.Result

    public struct Params: APIParams {
        public var app: String
        public var field: String
        public var value: String
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            field = try p.string("field")
            value = try p.string("value")
        }
    }
}

public enum FieldFillSecret: APIMethod {
    public static let name = "field.fill_secret"
    public static let summary = "Fills the password field named or labelled `field` with a secret the daemon reads from the desktop's keyring (Secret Service); the secret never reaches the caller, the log or a prompt. Class secret: never covered by \"*\", tasks or remembered grants."
    public static let params: [Schema.Field] = [
        APIFields.app,
        .init("field", .string, required: true, "The password field's label (or name), matched as field.fill matches; only a password field is ever filled."),
        .init("secret", .object([
            .init("label", .string(maxLength: 4096), "The keyring item's exact label."),
            .init("attributes", .object([], additional: true), "Attributes the item carries (strings), e.g. {\"service\": \"example.org\", \"user\": \"alice\"}."),
        ]), required: true, "Which keyring item: exactly one of label and attributes."),
    ]
    public static let result = Schema.object([
        .init("ref", .string), .init("ok", .boolean),
        .init("matches", .boolean, "The field's length after the fill equals the secret's."),
        .init("secret_item", .string, "The label of the item filled."),
    ], additional: true)
    public static let gating = Gating.gated(.secret)
    public static let errors: [ErrorCode] = [
        .appNotFound, .elementNotFound, .ambiguous, .notSupported, .appNotResponding, .secretUnavailable, .secretNotFound,
    ]

    /// Which item: its exact label, or attributes it carries.
    public enum Item: Sendable, Hashable {
        case label(String)
        case attributes([String: String])
    }

    public struct Params: APIParams {
        public var app: String
        public var field: String
        public var item: Item
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            field = try p.string("field")
            let secret = try p.value("secret")?.objectValue ?? [:]
            let label = secret["label"]?.stringValue
            let attributes = secret["attributes"]?.objectValue
            switch (label, attributes) {
            case (let label?, nil):
                guard !label.isEmpty else { throw .invalidParams(field: "secret.label", "must not be empty") }
                item = .label(label)
            case (nil, let attributes?):
                var pairs: [String: String] = [:]
                for (key, value) in attributes {
                    guard let text = value.stringValue else {
                        throw .invalidParams(field: "secret.attributes.\(key)", "attribute values are strings")
                    }
                    pairs[key] = text
                }
                guard !pairs.isEmpty else { throw .invalidParams(field: "secret.attributes", "must name at least one attribute") }
                item = .attributes(pairs)
            default:
                throw .invalidParams(field: "secret", "give exactly one of label and attributes")
            }
        }
    }

    public struct Result: APIResult {
        public var ref: String?
        public var ok: Bool
        public var matches: Bool
        public var secretItem: String
        public init(ref: String?, ok: Bool, matches: Bool, secretItem: String) {
            self.ref = ref
            self.ok = ok
            self.matches = matches
            self.secretItem = secretItem
        }
        public var reply: APIReply {
            var object: JSONObject = [:]
            if let ref { object.append("ref", .string(ref)) }
            object.append("ok", .bool(ok))
            object.append("matches", .bool(matches))
            object.append("secret_item", .string(secretItem))
            return .value(.object(object))
        }
    }
}

public enum ValueSet: APIMethod {
    public static let name = "value.set"
    public static let summary = "Sets a range element's current value (within its minimum and maximum)."
    public static let params: [Schema.Field] = [APIFields.ref, .init("value", .number, required: true)]
    public static let result = Schema.object([
        .init("ok", .boolean), .init("value", .number, "The value read back."),
        .init("settled", .boolean, "False when the value read back was not the value set after 1 s."),
    ], additional: true)
    public static let gating = Gating.gated(.write)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .invalidValue, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var value: Double
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            value = try p.double("value")
        }
    }

    public struct Result: APIResult {
        public var ok: Bool
        public var value: Double
        public var settled: Bool
        public init(ok: Bool, value: Double, settled: Bool = true) {
            self.ok = ok
            self.value = value
            self.settled = settled
        }
        public var reply: APIReply { .value(["ok": .bool(ok), "value": .double(value), "settled": .bool(settled)]) }
    }
}

public enum ElementSelect: APIMethod {
    public static let name = "element.select"
    public static let summary = "Chooses an option of a combo box or list by its name or position (AT-SPI Selection, else the option's own action). The broker decides on the combo box or list; the audit log records the option asked for."
    public static let params: [Schema.Field] = [
        APIFields.ref,
        .init("option_name", .string(maxLength: 4096), "The option's exact name. Give this or index, not both."),
        .init("index", .integer(minimum: 0, maximum: 100_000), "The option's position among the list's options, from 0."),
    ]
    public static let result = Schema.object([
        .init("ok", .boolean, "The option reads as selected afterwards."), .init("option", .string), .init("index", .integer),
        .init("method", .stringEnum(["selection", "action", "none"]), "How it was chosen (none: it already was)."),
        .init("settled", .boolean),
    ], additional: true)
    public static let gating = Gating.gated(.act)
    public static let auditedParams = ["option_name", "index"]
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]

    public struct Params: APIParams {
        public var ref: String
        public var optionName: String?
        public var index: Int?
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            optionName = try p.optionalString("option_name")
            index = try p.optionalInt("index")
            guard (optionName == nil) != (index == nil) else {
                throw .invalidParams(field: "option_name", "give exactly one of option_name and index")
            }
        }
    }

    public struct Result: APIResult {
        public var ok: Bool
        public var option: String
        public var index: Int
        public var method: String
        public var settled: Bool
        public init(ok: Bool, option: String, index: Int, method: String, settled: Bool) {
            self.ok = ok
            self.option = option
            self.index = index
            self.method = method
            self.settled = settled
        }
        public var reply: APIReply {
            .value(["ok": .bool(ok), "option": .string(option), "index": .int(Int64(index)), "method": .string(method),
                    "settled": .bool(settled)])
        }
    }
}

public enum ElementScrollIntoView: APIMethod {
    public static let name = "element.scroll_into_view"
    public static let summary = "Scrolls an element into view (Component.ScrollTo) and says whether it is on screen afterwards (in_view), with its states."
    public static let params: [Schema.Field] = [APIFields.ref]
    public static let result = Schema.object([.init("ok", .boolean), .init("in_view", .boolean), .init("states", .arrayOf(.string))],
                                             additional: true)
    public static let gating = Gating.gated(.act)
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
    public typealias Params = RefParams

    public struct Result: APIResult {
        public var ok: Bool
        public var inView: Bool
        public var states: [String]
        public init(ok: Bool, inView: Bool, states: [String]) {
            self.ok = ok
            self.inView = inView
            self.states = states
        }
        public var reply: APIReply { .value(["ok": .bool(ok), "in_view": .bool(inView), "states": JSONValue(states)]) }
    }
}

public enum TextInsert: APIMethod {
    public static let name = "text.insert"
    public static let summary = "Inserts text into an editable element at a character offset (default: the caret, else the end) and reports whether the field grew by it."
    public static let params: [Schema.Field] = [
        APIFields.ref, .init("value", .string(maxLength: 1 << 20), required: true, "The text to insert."),
        .init("at", .integer(minimum: 0, maximum: 1 << 24), "Character offset; default the caret, else the end."),
    ]
    public static let result = Schema.object([.init("ok", .boolean), .init("matches", .boolean), .init("length", .integer)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let auditedText: String? = "value"
    public static let errors: [ErrorCode] = [.elementNotFound, .notSupported, .appNotResponding]
    public typealias Result = TextSet.Result

    public struct Params: APIParams {
        public var ref: String
        public var value: String
        public var at: Int?
        public init(_ p: ParamsObject) throws(RPCError) {
            ref = try p.string("ref")
            value = try p.string("value")
            at = try p.optionalInt("at")
        }
    }
}

public enum BrowserNavigate: APIMethod {
    public static let name = "browser.navigate"
    public static let summary = "Loads an http or https URL in a running browser (Firefox or Chromium), as a new tab of that browser; the audit log records the URL."
    public static let params: [Schema.Field] = [
        APIFields.app, .init("url", .string(maxLength: 8192), required: true, "Absolute http:// or https:// URL."),
    ]
    public static let result = Schema.object([.init("ok", .boolean), .init("url", .string), .init("origin", .string)], additional: true)
    public static let gating = Gating.gated(.write)
    public static let auditedParams = ["url"]
    public static let opensWorld = true
    public static let errors: [ErrorCode] = [.appNotFound, .notSupported, .appNotResponding, .ambiguous]

    public struct Params: APIParams {
        public var app: String
        public var url: String
        public init(_ p: ParamsObject) throws(RPCError) {
            app = try p.string("app")
            url = try p.string("url")
        }
    }
}
