import Foundation
import Testing
import TestSupport

/// `deskgate-bench`'s pure-logic benchmarks run (the numbers are printed, never asserted): the
/// audit one leaves a log that verifies, the broker one decides with its policy loaded.
@Suite("Benchmark tool")
struct BenchToolTests {
    func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProducts.path("deskgate-bench"))
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(arguments): \(output)")
        return output
    }

    @Test("the audit benchmark runs 16 appenders and its log verifies")
    func audit() throws {
        let directory = TempDirectory("bench")
        defer { directory.remove() }
        let report = try run(["audit", "--directory", directory.file("audit")])
        #expect(report.contains("16 appenders"), "\(report)")
        #expect(report.contains("verifies (17200 records)"), "\(report)")
    }

    @Test("the broker benchmark decides on a loaded policy and says so in its printf-formatted summary")
    func broker() throws {
        let report = try run(["broker", "--rules", "500", "--decisions", "2000"])
        #expect(report.range(of: #"^broker decide: 500 rules, 2000 decisions, p50 \d+\.\d\d µs"#, options: .regularExpression) != nil,
                "\(report)")
    }
}
