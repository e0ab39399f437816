import Glibc

/// Record times: UTC, RFC 3339 with microseconds (`2026-11-24T22:34:31.123456Z`, see
/// ``RFC3339``). This fixed width form sorts lexicographically in time order, which the
/// `since` filter relies on.
public enum AuditTime {
    /// Microseconds since the Unix epoch, wall clock.
    static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec / 1000)
    }

    /// Microseconds on the monotonic clock (for deadlines).
    static func monotonicMicros() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec / 1000)
    }
}
