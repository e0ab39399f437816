#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The size of the soak tests (docs/benchmarks.md, "Soak"). Each soak part is one ordinary test
/// that `make test` runs with short counts; `make soak` runs the same tests with
/// `DESKGATE_SOAK=1`: full counts, and each prints its figures on lines starting with `SOAK `.
public enum Soak {
    /// `DESKGATE_SOAK=1`: the full counts.
    public static var full: Bool { environment("DESKGATE_SOAK") == "1" }

    /// `variable` from the environment if set (a run smaller or larger than the full one, to be
    /// recorded as what ran), else `full` under `DESKGATE_SOAK=1`, else `short`.
    public static func count(_ variable: String, short: Int, full: Int) -> Int {
        if let raw = environment(variable), let value = Int(raw), value > 0 { return value }
        return Self.full ? full : short
    }

    /// One figure line, e.g. `SOAK connect: 10000 cycles ...`; `make soak` collects them.
    public static func report(_ part: String, _ text: String) {
        print("SOAK \(part): \(text)")
        fflush(nil)  // a pipe buffers stdout: the figures must not wait for the end of the run
    }

    /// The process's open file descriptors (entries of /proc/PID/fd), or -1.
    public static func fdCount(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// The process's resident set in KiB (`VmRSS` of /proc/PID/status), or -1.
    public static func rssKiB(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    /// Seconds since `start`, for the figures (never asserted).
    public static func seconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        let value = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return String(format: "%.1f s", value)
    }

    private static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
}
