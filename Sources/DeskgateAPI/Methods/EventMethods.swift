public import JSONRPC

// Event streams.

public enum EventsSubscribe: APIMethod {
    public static let name = "events.subscribe"
    public static let summary = "Streams accessibility events as `event` notifications on this connection until it closes: only of apps the caller may observe (by a rule or a remembered grant; streams never prompt), text events only of elements it may read, none of password fields."
    public static let eventTypes = ["focus", "window", "children", "state", "name", "text"]
    public static let params: [Schema.Field] = [.init("events", .array(.stringEnum(eventTypes), maxItems: 16), required: true)]
    public static let result = Schema.object([.init("events", .arrayOf(.string))], additional: true)
    public static let gating = Gating.filteredPerApp(.observe)
    public static let errors: [ErrorCode] = [.busUnavailable]

    public struct Params: APIParams {
        public var events: Set<String>
        public init(_ p: ParamsObject) throws(RPCError) { events = Set(try p.stringArray("events") ?? []) }
    }
}
