import Testing
@testable import deskgate_mcp

@Suite("Outline parsing, scopes and diffs")
struct OutlineTests {
    @Test("a line's depth, role, name and ref")
    func parsesLine() {
        let line = OutlineLine(#"    - push button "Submit" [ref=r1a2] (focusable): ok"#)
        #expect(line.depth == 2)
        #expect(line.role == "push button")
        #expect(line.name == "Submit")
        #expect(line.ref == "r1a2")
        #expect(line.key == #"- push button "Submit" (focusable): ok"#)
    }

    @Test("escaped quotes, and a name that pretends to carry a ref")
    func escapedNames() {
        let line = OutlineLine(#"  - label "say \"hi\" [ref=fake] \\" [ref=real9] (checked)"#)
        #expect(line.name == #"say "hi" [ref=fake] \"#)
        #expect(line.ref == "real9")
    }

    @Test("a line without a ref or a name")
    func partialLines() {
        #expect(OutlineLine("- filler").ref == nil)
        #expect(OutlineLine(#"- label "unterminated"#).ref == nil)
    }

    @Test("each ref maps to its nearest window")
    func scopes() {
        let outline = """
            - application "app" [ref=a0]
              - frame "Main" [ref=w1]
                - panel "" [ref=p1]
                  - push button "OK" [ref=b1]
              - dialog "Confirm" [ref=w2]
                - push button "Yes" [ref=b2]
            """
        let scopes = OutlineScopes.scopes(of: OutlineLine.parse(outline), app: "id7")
        #expect(scopes["b1"] == RefScope(app: "id7", window: "w1", windowName: "Main", role: "push button"))
        #expect(scopes["b2"] == RefScope(app: "id7", window: "w2", windowName: "Confirm", role: "push button"))
        #expect(scopes["w2"]?.window == "w2")
        #expect(scopes["a0"] == RefScope(app: "id7", window: nil, windowName: nil, role: "application"))
    }

    @Test("an outline whose windows are all empty is recognised (GTK 4.8 under filter showing)")
    func emptyWindows() {
        #expect(OutlineScopes.onlyEmptyWindows(OutlineLine.parse("- application \"a\" [ref=1]\n  - frame \"F\" [ref=2] (active)\n")))
        #expect(!OutlineScopes.onlyEmptyWindows(OutlineLine.parse("- application \"a\" [ref=1]\n  - frame \"F\" [ref=2]\n    - label \"x\" [ref=3]\n")))
        #expect(!OutlineScopes.onlyEmptyWindows(OutlineLine.parse("- application \"a\" [ref=1]\n")))
    }

    @Test("diffs ignore refs and show only changed lines")
    func diffIgnoresRefs() {
        let before = OutlineLine.parse("""
            - frame "F" [ref=1]
              - label "Status: idle" [ref=2]
              - push button "Go" [ref=3]
            """)
        let after = OutlineLine.parse("""
            - frame "F" [ref=10]
              - label "Status: done" [ref=20]
              - push button "Go" [ref=30]
              - label "New" [ref=40]
            """)
        let changes = OutlineDiff.changes(before: before, after: after)
        #expect(changes.map(\.rendered) == [
            #"- label "Status: idle""#, #"+ label "Status: done" [ref=20]"#, #"+ label "New" [ref=40]"#,
        ])
        #expect(OutlineDiff.changes(before: before, after: before).isEmpty)
    }

    @Test("diff of a large reordering falls back to a set difference and stays bounded in output")
    func largeDiff() {
        let before = (0..<3000).map { OutlineLine("- label \"L\($0)\" [ref=x\($0)]") }
        var after = before.reversed().map { $0 }
        after.append(OutlineLine("- label \"extra\" [ref=e]"))
        let changes = OutlineDiff.changes(before: before, after: after)
        #expect(changes.map(\.rendered) == [#"+ label "extra" [ref=e]"#])
        let many = (0..<40).map { OutlineDiff.Change(kind: .added, line: OutlineLine("- label \"\($0)\" [ref=r\($0)]")) }
        let text = OutlineDiff.render(many, limit: 24)
        #expect(text.split(separator: "\n").count == 25)
        #expect(text.hasSuffix("… and 16 more changed lines"))
    }
}
