import Foundation

/// One line of deskgate's compact outline: `  - ROLE "NAME" [ref=REF] (STATE, …): TEXT`.
struct OutlineLine: Sendable, Equatable {
    var text: String
    var depth: Int
    var role: String
    var ref: String?

    /// The line without its ref, for comparing two reads whose refs may differ.
    var key: String {
        guard let ref, let range = text.range(of: " [ref=\(ref)]") else { return body }
        var copy = text
        copy.removeSubrange(range)
        return String(copy.drop(while: { $0 == " " }))
    }

    /// The line without its indentation.
    var body: String { String(text.drop(while: { $0 == " " })) }

    /// The element's name, unescaped (the daemon writes `\"` and `\\` inside the quotes).
    var name: String

    init(_ text: String) {
        self.text = text
        let indent = text.prefix(while: { $0 == " " }).count
        depth = indent / 2
        var rest = text.dropFirst(indent)
        if rest.hasPrefix("- ") { rest = rest.dropFirst(2) }
        guard let quote = rest.firstIndex(of: "\"") else {
            role = String(rest); name = ""; ref = nil
            return
        }
        role = String(rest[..<quote]).trimmingSuffix(" ")
        // The name runs to the first unescaped quote; only then comes the ref, so a name that
        // contains "[ref=" cannot pass for one.
        var parsedName = ""
        var index = rest.index(after: quote)
        var escaped = false
        while index < rest.endIndex {
            let ch = rest[index]
            if escaped { parsedName.append(ch); escaped = false }
            else if ch == "\\" { escaped = true }
            else if ch == "\"" { break }
            else { parsedName.append(ch) }
            index = rest.index(after: index)
        }
        name = parsedName
        ref = nil
        guard index < rest.endIndex else { return }
        let tail = rest[rest.index(after: index)...]
        if tail.hasPrefix(" [ref="), let end = tail.firstIndex(of: "]") {
            ref = String(tail[tail.index(tail.startIndex, offsetBy: 6)..<end])
        }
    }

    static func parse(_ outline: String) -> [OutlineLine] {
        outline.split(separator: "\n", omittingEmptySubsequences: true).map { OutlineLine(String($0)) }
    }
}

extension String {
    func trimmingSuffix(_ character: Character) -> String {
        var s = Substring(self)
        while s.last == character { s = s.dropLast() }
        return String(s)
    }
}

/// Where an element lives: its app and the window around it, as last seen in an outline.
struct RefScope: Sendable, Equatable {
    var app: String
    var window: String?
    var windowName: String?
    /// The element's own role, when it was seen in an outline.
    var role: String?
}

/// Roles of the top-level containers a diff is scoped to.
enum WindowRoles {
    static let all: Set<String> = ["frame", "window", "dialog", "alert", "file chooser", "color chooser", "font chooser"]
}

/// Maps each line's ref to the window that contains it (the nearest window-role ancestor).
enum OutlineScopes {
    static func scopes(of lines: [OutlineLine], app: String) -> [String: RefScope] {
        var result: [String: RefScope] = [:]
        var stack: [OutlineLine] = []
        for line in lines {
            while let last = stack.last, last.depth >= line.depth { stack.removeLast() }
            stack.append(line)
            guard let ref = line.ref else { continue }
            let window = stack.last { WindowRoles.all.contains($0.role) && $0.ref != nil }
            result[ref] = RefScope(app: app, window: window?.ref, windowName: window?.name, role: line.role)
        }
        return result
    }

}

extension OutlineScopes {
    /// Whether the outline has windows and every one of them is empty (no line below it).
    static func onlyEmptyWindows(_ lines: [OutlineLine]) -> Bool {
        var sawWindow = false
        for (index, line) in lines.enumerated() where WindowRoles.all.contains(line.role) {
            sawWindow = true
            if index + 1 < lines.count, lines[index + 1].depth > line.depth { return false }
        }
        return sawWindow
    }
}

/// A short line diff of two outlines: what the model needs to see after an action.
enum OutlineDiff {
    struct Change: Sendable, Equatable {
        enum Kind: Sendable { case removed, added }
        var kind: Kind
        var line: OutlineLine
        var rendered: String { (kind == .removed ? "- " : "+ ") + line.key(withRef: kind == .added) }
    }

    /// Lines removed from `before` and added in `after`, in outline order. Lines are compared
    /// without their refs, so a daemon that issues new refs per read shows no spurious changes.
    static func changes(before: [OutlineLine], after: [OutlineLine]) -> [Change] {
        let a = before.map(\.key), b = after.map(\.key)
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let oldMiddle = Array(before[prefix..<(before.count - suffix)])
        let newMiddle = Array(after[prefix..<(after.count - suffix)])
        if oldMiddle.isEmpty { return newMiddle.map { Change(kind: .added, line: $0) } }
        if newMiddle.isEmpty { return oldMiddle.map { Change(kind: .removed, line: $0) } }
        if oldMiddle.count * newMiddle.count <= 4_000_000 {
            return lcsChanges(oldMiddle, newMiddle)
        }
        // Too large for a table: report lines present on one side only.
        var remaining: [String: Int] = [:]
        for line in newMiddle { remaining[line.key, default: 0] += 1 }
        var changes: [Change] = []
        for line in oldMiddle {
            if let n = remaining[line.key], n > 0 { remaining[line.key] = n - 1 } else { changes.append(Change(kind: .removed, line: line)) }
        }
        var present: [String: Int] = [:]
        for line in oldMiddle { present[line.key, default: 0] += 1 }
        for line in newMiddle {
            if let n = present[line.key], n > 0 { present[line.key] = n - 1 } else { changes.append(Change(kind: .added, line: line)) }
        }
        return changes
    }

    private static func lcsChanges(_ a: [OutlineLine], _ b: [OutlineLine]) -> [Change] {
        let n = a.count, m = b.count
        // lengths[i][j] = LCS of a[i...] and b[j...], flattened.
        var lengths = [Int32](repeating: 0, count: (n + 1) * (m + 1))
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                lengths[i * (m + 1) + j] = a[i].key == b[j].key
                    ? lengths[(i + 1) * (m + 1) + j + 1] + 1
                    : max(lengths[(i + 1) * (m + 1) + j], lengths[i * (m + 1) + j + 1])
            }
        }
        var changes: [Change] = []
        var i = 0, j = 0
        while i < n, j < m {
            if a[i].key == b[j].key {
                i += 1; j += 1
            } else if lengths[(i + 1) * (m + 1) + j] >= lengths[i * (m + 1) + j + 1] {
                changes.append(Change(kind: .removed, line: a[i])); i += 1
            } else {
                changes.append(Change(kind: .added, line: b[j])); j += 1
            }
        }
        while i < n { changes.append(Change(kind: .removed, line: a[i])); i += 1 }
        while j < m { changes.append(Change(kind: .added, line: b[j])); j += 1 }
        return changes
    }

    /// The changes as text, at most `limit` lines.
    static func render(_ changes: [Change], limit: Int = 24) -> String {
        var lines = changes.prefix(limit).map(\.rendered)
        if changes.count > limit { lines.append("… and \(changes.count - limit) more changed lines") }
        return lines.joined(separator: "\n")
    }
}

extension OutlineLine {
    /// The line without indentation and its leading "- ", with or without the ref.
    func key(withRef: Bool) -> String {
        var s = withRef ? body : key
        if s.hasPrefix("- ") { s.removeFirst(2) }
        return s
    }
}
