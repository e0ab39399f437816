public import JSONRPC

// Task sessions: a person approves a bounded task once (never persisted; they die with the
// client's connection and with the daemon).

private let scopeEntrySchema = Schema.object([
    .init("actions", .array(.string, maxItems: 16), required: true, "Risk classes (observe, read, act, write) or their methods; no \"*\"."),
    .init("app_exe", .string(maxLength: 4096), required: true, "The app's executable, exact: an app's name is its own choice."),
    .init("app", .string(maxLength: 256), "Glob on the app's name, narrowing app_exe."),
    .init("role", .string(maxLength: 64)), .init("name", .string(maxLength: 256), "Glob on the element's name or label."),
    .init("origin", .string(maxLength: 256), "Glob on the web origin."),
    .init("max", .integer(minimum: 1, maximum: 100_000), "How many act and write requests this entry covers."),
], additional: false)

public enum TaskBegin: APIMethod {
    public static let name = "task.begin"
    public static let summary = "Asks the person once, through the prompt helper, to approve a bounded task; if approved, this client process's requests inside the scope that would otherwise ask are allowed without prompts until the task ends, expires, goes idle or reaches a limit."
    public static let params: [Schema.Field] = [
        .init("title", .string(maxLength: 200), required: true, "Shown to the person as the agent's own words."),
        .init("scope", .array(scopeEntrySchema, maxItems: 16), required: true,
              "What the task may do, as policy rules say it: each entry names actions, the app's executable, and optionally the app's name, a role, an element name, a web origin and its own limit."),
        .init("expires_in_s", .integer(minimum: 1, maximum: 28_800), required: true, "At most 8 hours."),
        .init("idle_s", .integer(minimum: 1, maximum: 28_800), "Ends the task after this long without a covered request."),
        .init("max_actions", .integer(minimum: 1, maximum: 100_000), "How many act and write requests the task covers in all."),
    ]
    public static let result = Schema.object([
        .init("task_id", .string, required: true), .init("expires_at", .string, required: true),
    ], additional: true)
    public static let errors: [ErrorCode] = [.denied, .appNotFound]

    public struct Params: APIParams {
        public var title: String
        public var scope: [JSONValue]
        public var expiresIn: Int
        public var idle: Int?
        public var maxActions: Int?
        public init(_ p: ParamsObject) throws(RPCError) {
            title = try p.string("title")
            scope = try p.value("scope")?.arrayValue ?? []
            expiresIn = try p.int("expires_in_s")
            idle = try p.optionalInt("idle_s")
            maxActions = try p.optionalInt("max_actions")
            if scope.isEmpty { throw RPCError.invalidParams(field: "scope", "must list at least one entry") }
        }
    }
}

public enum TaskStatus: APIMethod {
    public static let name = "task.status"
    public static let summary = "The caller's own live tasks (or one of them) with their counters."
    public static let params: [Schema.Field] = [.init("task_id", .string(maxLength: 64), "One task; all of the caller's when left out.")]
    public static let result = Schema.object([.init("tasks", .arrayOf(.any()), required: true)], additional: true)

    public struct Params: APIParams {
        public var taskID: String?
        public init(_ p: ParamsObject) throws(RPCError) { taskID = try p.optionalString("task_id") }
    }
}

public enum TaskEnd: APIMethod {
    public static let name = "task.end"
    public static let summary = "Ends one of the caller's own tasks."
    public static let params: [Schema.Field] = [.init("task_id", .string(maxLength: 64), required: true, "The id task.begin returned.")]
    public static let result = Schema.object([.init("ended", .boolean, required: true)], additional: true)

    public struct Params: APIParams {
        public var taskID: String
        public init(_ p: ParamsObject) throws(RPCError) { taskID = try p.string("task_id") }
    }
}
