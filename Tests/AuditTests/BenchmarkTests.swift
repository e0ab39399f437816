import Audit
import Testing

@Suite("Audit benchmark")
struct BenchmarkTests {
    /// Runs the `make bench` audit benchmark once; asserts it completes and leaves a verifying
    /// chain (the numbers themselves are printed, not asserted).
    @Test("the benchmark runs and its log verifies")
    func benchmarkRuns() async throws {
        let tmp = TempDir("bench")
        defer { tmp.remove() }
        let report = await AuditBenchmark.run(directory: tmp.path)
        print(report)
        #expect(report.contains("16 appenders"))
        #expect(report.contains("verifies (17200 records)"))
    }
}
