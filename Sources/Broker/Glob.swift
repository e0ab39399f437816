/// A shell-style glob, case-sensitive, matched on Unicode scalars.
///
/// `*` matches any run of characters including `/` (policy globs name apps and paths alike),
/// `?` one character, `[abc]`, `[a-z]`, `[!abc]` / `[^abc]` one character from (or not from) a
/// set, and `\x` the character `x` literally. Malformed patterns (an unclosed `[`, a trailing
/// `\`, an empty set, a reversed range) are rejected when compiled, never matched loosely.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    enum Token: Sendable, Hashable {
        case literal(Unicode.Scalar)
        case any            // ?
        case star           // *
        case set(negated: Bool, items: [ClosedRange<UInt32>])
    }

    public let pattern: String
    let tokens: [Token]
    /// The pattern has no wildcard: matching is string equality (used for indexing).
    public let literal: String?

    public struct SyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
        public var pattern: String
        public var message: String
        public var description: String { "bad glob \"\(pattern)\": \(message)" }
    }

    public init(_ pattern: String) throws(SyntaxError) {
        self.pattern = pattern
        var tokens: [Token] = []
        let scalars = Array(pattern.unicodeScalars)
        var i = 0
        func fail(_ message: String) -> SyntaxError { SyntaxError(pattern: pattern, message: message) }
        while i < scalars.count {
            let c = scalars[i]
            switch c {
            case "*":
                if tokens.last != .star { tokens.append(.star) }  // ** is the same as *
                i += 1
            case "?":
                tokens.append(.any)
                i += 1
            case "\\":
                guard i + 1 < scalars.count else { throw fail("trailing backslash") }
                tokens.append(.literal(scalars[i + 1]))
                i += 2
            case "[":
                var j = i + 1
                var negated = false
                if j < scalars.count, scalars[j] == "!" || scalars[j] == "^" {
                    negated = true
                    j += 1
                }
                var items: [ClosedRange<UInt32>] = []
                var first = true
                var closed = false
                while j < scalars.count {
                    var lo = scalars[j]
                    if lo == "]" && !first {
                        closed = true
                        break
                    }
                    first = false
                    if lo == "\\" {
                        guard j + 1 < scalars.count else { throw fail("trailing backslash") }
                        j += 1
                        lo = scalars[j]
                    }
                    j += 1
                    if j + 1 < scalars.count, scalars[j] == "-", scalars[j + 1] != "]" {
                        var hi = scalars[j + 1]
                        j += 2
                        if hi == "\\" {
                            guard j < scalars.count else { throw fail("trailing backslash") }
                            hi = scalars[j]
                            j += 1
                        }
                        guard lo.value <= hi.value else { throw fail("reversed range \(lo)-\(hi)") }
                        items.append(lo.value...hi.value)
                    } else {
                        items.append(lo.value...lo.value)
                    }
                }
                guard closed else { throw fail("unclosed '['") }
                guard !items.isEmpty else { throw fail("empty character set") }
                tokens.append(.set(negated: negated, items: items))
                i = j + 1
            default:
                tokens.append(.literal(c))
                i += 1
            }
        }
        self.tokens = tokens
        if tokens.allSatisfy({ if case .literal = $0 { true } else { false } }) {
            var text = String.UnicodeScalarView()
            for case .literal(let s) in tokens { text.append(s) }
            literal = String(text)
        } else {
            literal = nil
        }
    }

    public var description: String { pattern }

    /// Whether the whole of `text` matches. Linear-time greedy matching with one backtrack point
    /// (the last `*`), so hostile patterns or names cannot make it slow.
    public func matches(_ text: String) -> Bool {
        if let literal { return text.utf8.elementsEqual(literal.utf8) }  // same as scalar equality, faster
        let view = text.unicodeScalars
        var t = view.startIndex
        var p = 0
        var starP = -1
        var starT = view.startIndex
        while t < view.endIndex {
            if p < tokens.count, Self.matchesOne(tokens[p], view[t]) {
                p += 1
                t = view.index(after: t)
            } else if p < tokens.count, tokens[p] == .star {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT = view.index(after: starT)
                t = starT
            } else {
                return false
            }
        }
        while p < tokens.count, tokens[p] == .star { p += 1 }
        return p == tokens.count
    }

    private static func matchesOne(_ token: Token, _ c: Unicode.Scalar) -> Bool {
        switch token {
        case .literal(let l): return l == c
        case .any: return true
        case .star: return false
        case .set(let negated, let items):
            var found = false
            for range in items where range.contains(c.value) {
                found = true
                break
            }
            return found != negated
        }
    }

    public static func == (lhs: Glob, rhs: Glob) -> Bool { lhs.pattern == rhs.pattern }
    public func hash(into hasher: inout Hasher) { hasher.combine(pattern) }
}
