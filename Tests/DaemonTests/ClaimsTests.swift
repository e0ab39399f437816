import Foundation
import TestSupport
import Testing

/// docs/security.md lists every "never" and "only" with the tests that try it; the list must not
/// point at a test that is gone.
@Suite("Every claim names a test that exists")
struct ClaimsTests {
    @Test("each test named in security.md's claims table is a suite in Tests/")
    func claimsNameRealTests() throws {
        let root = BuiltProducts.packageRoot
        let text = try String(contentsOfFile: root + "/docs/security.md", encoding: .utf8)
        let start = try #require(text.range(of: "## Every \"never\" and \"only\", with its test"))
        let section = text[start.upperBound...].prefix { _ in true }
        let end = section.range(of: "\n## ")?.lowerBound ?? section.endIndex
        let rows = section[..<end].split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| claim") }
        #expect(rows.count >= 20, "\(rows.count) claims")

        // Every `struct X` under Tests/.
        var suites: Set<String> = []
        let files = FileManager.default.enumerator(atPath: root + "/Tests")?.compactMap { $0 as? String } ?? []
        for file in files where file.hasSuffix(".swift") {
            let source = (try? String(contentsOfFile: root + "/Tests/" + file, encoding: .utf8)) ?? ""
            for line in source.split(separator: "\n") {
                let words = line.split(whereSeparator: { !$0.isLetter && !$0.isNumber && $0 != "_" })
                if let index = words.firstIndex(of: "struct"), index + 1 < words.count { suites.insert(String(words[index + 1])) }
            }
        }
        for row in rows {
            let cells = row.split(separator: "|", omittingEmptySubsequences: false)
            let tests = cells.count > 3 ? cells[3] : ""
            let named = tests.split(separator: "`").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            #expect(!named.isEmpty, "a claim without a test: \(row)")
            for name in named {
                #expect(suites.contains(name), "security.md names \(name), which is no test suite: \(row)")
            }
        }
    }
}
