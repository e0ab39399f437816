import DBus

/// A point in time by the monotonic clock (the same clock the D-Bus layer times calls by), to
/// check request deadlines.
struct Deadline: Sendable {
    let nanoseconds: UInt64

    init(after duration: Duration) {
        let (seconds, attoseconds) = duration.components
        nanoseconds = Self.now() + UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    var hasPassed: Bool { Self.now() >= nanoseconds }

    private init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// A deadline `share` of the way from now to this one.
    func fraction(_ share: Double) -> Deadline {
        let now = Self.now()
        guard nanoseconds > now else { return self }
        return Deadline(nanoseconds: now + UInt64(Double(nanoseconds - now) * share))
    }

    /// The time left, at least 1 ms, at most `cap`.
    func remaining(cap: Duration) -> Duration {
        let now = Self.now()
        guard nanoseconds > now else { return .milliseconds(1) }
        return min(cap, .nanoseconds(Int64(nanoseconds - now)))
    }

    static func now() -> UInt64 { MonotonicClock.nanoseconds() }
}
