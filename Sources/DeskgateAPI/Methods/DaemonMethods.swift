public import JSONRPC

// The daemon and the session: never gated.

public enum DaemonPing: APIMethod {
    public static let name = "daemon.ping"
    public static let summary = "Liveness check; returns \"pong\"."
    public static let result = Schema.string(enumValues: ["pong"])
}

public enum DaemonInfo: APIMethod {
    public static let name = "daemon.info"
    public static let summary = "Version and build provenance, pid, uptime, socket path, connected clients, and subsystem status."
    public static let result = Schema.object([
        .init("version", .string, required: true),
        .init("build", .object([
            .init("version", .string), .init("commit", .string), .init("dirty", .boolean), .init("compiler", .string),
            .init("built_at", .string), .init("built_at_source", .string),
            .init("dependencies", .arrayOf(.object([.init("name", .string), .init("version", .string), .init("source", .string)]))),
        ], additional: false), required: true, "Where this daemon binary came from (docs/supply-chain.md)."),
        .init("pid", .integer, required: true),
        .init("uptime_s", .number, required: true), .init("socket", .string, required: true),
        .init("clients", .integer, required: true),
    ], additional: true)
}

public enum SessionHello: APIMethod {
    public static let name = "session.hello"
    public static let summary = "Records an advisory label for this connection; it is always shown apart from the verified identity and never matched by policy."
    public static let params: [Schema.Field] = [.init("client", .string(maxLength: 256), required: true, "Advisory client label.")]
    public static let result = Schema.object([.init("label", .string)], additional: true)

    public struct Params: APIParams {
        public var client: String
        public init(_ p: ParamsObject) throws(RPCError) { client = try p.string("client") }
    }
}

public enum SessionWhoami: APIMethod {
    public static let name = "session.whoami"
    public static let summary = "The caller's identity as the daemon verified it from the kernel."
    public static let result = APISchemas.identity
}

public enum RPCDiscover: APIMethod {
    public static let name = "rpc.discover"
    public static let summary = "OpenRPC 1.2 document of every method, generated from the dispatcher's registry."
    public static let result = Schema.any(description: "OpenRPC document")
}

/// Notification only: cancels one of the caller's pending requests.
public enum RPCCancel: APIMethod {
    public static let name = "rpc.cancel"
    public static let summary = "Notification: cancel a pending request of this connection; it is answered with -32800."
    public static let params: [Schema.Field] = [.init("id", .anyOf([.string, .integer, .number, .null]), required: true)]
    public static let result = Schema.null

    public struct Params: APIParams {
        public var id: JSONValue
        public init(_ p: ParamsObject) throws(RPCError) { id = try p.value("id") ?? .null }
    }
}

public enum DaemonDoctor: APIMethod {
    public static let name = "daemon.doctor"
    public static let summary = "Why trees are empty or thin and what to do: accessibility off, apps with (almost) no tree, programs not on the accessibility bus, no prompt helper, policy errors, the daemon's hardening. Per-app findings only for apps the caller may observe."
    public static let result = Schema.object([
        .init("status", .stringEnum(["ok", "info", "warning", "error"]), required: true, "The worst finding."),
        .init("findings", .arrayOf(.object([
            .init("check", .string, required: true), .init("status", .stringEnum(["ok", "info", "warning", "error"]), required: true),
            .init("message", .string, required: true), .init("advice", .string), .init("app", .string), .init("pid", .integer),
        ], additional: true)), required: true),
    ], additional: true)
    public static let gating = Gating.filteredPerApp(.observe)
}
