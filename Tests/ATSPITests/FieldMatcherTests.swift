import ATSPI
import Testing

/// How `field.fill` finds its field (the pure rule; the daemon tests run it against real apps).
@Suite("field.fill matching")
struct FieldMatcherTests {
    typealias Candidate = FieldMatcher.Candidate

    let form = [
        Candidate(name: "", label: "Name"),
        Candidate(name: "", label: "Email:"),
        Candidate(name: "search", label: nil),
        Candidate(name: "Phone", label: "Mobile"),
    ]

    @Test("exact display name first, then exact accessible name, then normalised forms")
    func tiers() {
        #expect(FieldMatcher.matches("Name", candidates: form) == [0])
        #expect(FieldMatcher.matches("name", candidates: form) == [0])
        #expect(FieldMatcher.matches("  NAME ", candidates: form) == [0])
        #expect(FieldMatcher.matches("email", candidates: form) == [1], "a trailing colon is dropped")
        #expect(FieldMatcher.matches("search", candidates: form) == [2])
        #expect(FieldMatcher.matches("Mobile", candidates: form) == [3])
        #expect(FieldMatcher.matches("Phone", candidates: form) == [3], "the accessible name when no label matches")
        #expect(FieldMatcher.matches("Shoe size", candidates: form).isEmpty)
    }

    @Test("an exact match wins over case-insensitive ones; several in the winning tier are all returned")
    func precedenceAndAmbiguity() {
        let fields = [Candidate(name: "", label: "email"), Candidate(name: "", label: "Email"), Candidate(name: "", label: "EMAIL")]
        #expect(FieldMatcher.matches("Email", candidates: fields) == [1])
        #expect(FieldMatcher.matches("eMail", candidates: fields) == [0, 1, 2])
    }

    @Test("an empty label falls back to the name; blank input names nothing")
    func blanks() {
        #expect(FieldMatcher.matches("x", candidates: [Candidate(name: "x", label: "")]) == [0])
        #expect(FieldMatcher.normalized(" \t ").isEmpty)
        #expect(FieldMatcher.normalized("A\u{00A0} b:") == "a b")
    }
}
