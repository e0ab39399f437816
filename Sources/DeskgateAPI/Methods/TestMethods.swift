public import JSONRPC

// Registered only with `deskgated --enable-test-methods`.

/// Sleeps, so tests can observe concurrency, ordering, cancellation and backpressure.
public enum DebugSleep: APIMethod {
    public static let name = "debug.sleep"
    public static let summary = "Test only: sleeps `ms` milliseconds and reports how many debug.sleep calls ran at once."
    public static let params: [Schema.Field] = [.init("ms", .integer(minimum: 0, maximum: 60_000), required: true)]
    public static let result = Schema.object([.init("slept_ms", .integer), .init("max_concurrent", .integer)], additional: true)

    public struct Params: APIParams {
        public var ms: Int
        public init(_ p: ParamsObject) throws(RPCError) { ms = try p.int("ms") }
    }
}
