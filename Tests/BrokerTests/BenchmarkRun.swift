import Broker
import Foundation
import Testing

/// Runs the decision benchmark when DESKGATE_BENCH is set (build with -c release to measure).
/// Not a timing assert: speed is recorded, not tested.
@Suite("Broker benchmark")
struct BenchmarkRun {
    @Test("decision time with 10,000 rules", .enabled(if: ProcessInfo.processInfo.environment["DESKGATE_BENCH"] != nil))
    func run() async {
        let result = await BrokerBenchmark.run()
        print(result.summary)
        #expect(result.rules == 10_000)
        #expect(result.p50Microseconds > 0)
    }
}
