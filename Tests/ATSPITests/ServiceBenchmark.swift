import ATSPI
import Foundation
import JSONRPC
import Testing

/// Service-level timings (no socket): run with DESKGATE_ATSPI_BENCH=1 under the harness with the
/// apps named below, e.g.
///   scripts/headless-desktop.sh --app 'qt5:--rows 500 --name bench-qt5-2k' \
///     --app 'gtk3:--rows 500 --name bench-gtk3-2k' --app 'gtk3:--rows 2500 --name bench-gtk3-10k' \
///     --app 'gtk4:--rows 280 --name bench-gtk4-2k' -- \
///     env DESKGATE_ATSPI_BENCH=1 swift test -c release --filter ServiceBenchmark
/// Prints numbers; asserts only that the work was done (no timing asserts).
@Suite("Service benchmark", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["DESKGATE_ATSPI_BENCH"] == "1", "set DESKGATE_ATSPI_BENCH=1"))
struct ServiceBenchmark {
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
    }

    static func time(_ body: () async throws -> Void) async rethrows -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try await body()
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    @Test("snapshots and actions", arguments: ["bench-gtk3-2k", "bench-gtk3-10k", "bench-gtk4-2k", "bench-qt5-2k"])
    func snapshot(app: String) async throws {
        let service = try await Desktop.shared.get()
        var nodes = 0
        var method = ""
        var fetch: [Double] = []
        var times: [Double] = []
        let runs = app.contains("10k") ? 10 : 20
        for _ in 0..<runs {
            times.append(try await Self.time {
                let result = try await service.snapshot(app: app, maxNodes: 100_000)
                nodes = result.nodes.count
                method = result["stats"]?["method"]?.stringValue ?? ""
                fetch.append(result["stats"]?["fetch_ms"]?.doubleValue ?? -1)
            })
        }
        #expect(nodes > 1000)
        var outlineTimes: [Double] = []
        for _ in 0..<5 {
            outlineTimes.append(try await Self.time { _ = try await service.snapshot(app: app, maxNodes: 100_000, format: .outline) })
        }
        var showingTimes: [Double] = []
        var showingNodes = 0
        for _ in 0..<5 {
            showingTimes.append(try await Self.time {
                showingNodes = try await service.snapshot(app: app, maxNodes: 100_000, filter: .showing).nodes.count
            })
        }
        let submit = try #require(try await service.find(app: app, role: "push button", name: "Submit").nodes.first?.ref)
        var actionTimes: [Double] = []
        for _ in 0..<20 { actionTimes.append(try await Self.time { _ = try await service.activate(ref: submit) }) }
        let p50 = Self.percentile(times, 0.5)
        print("""
            BENCH \(app): nodes=\(nodes) method=\(method) snapshot p50=\(String(format: "%.1f", p50)) ms \
            min=\(String(format: "%.1f", times.min()!)) ms p90=\(String(format: "%.1f", Self.percentile(times, 0.9))) ms \
            (\(String(format: "%.0f", p50 * 1000 / Double(nodes))) µs/node, fetch p50=\(String(format: "%.1f", Self.percentile(fetch, 0.5))) ms); outline p50=\(String(format: "%.1f", Self.percentile(outlineTimes, 0.5))) ms; \
            showing: \(showingNodes) nodes p50=\(String(format: "%.1f", Self.percentile(showingTimes, 0.5))) ms; \
            activate p50=\(String(format: "%.2f", Self.percentile(actionTimes, 0.5))) ms
            """)
    }
}
