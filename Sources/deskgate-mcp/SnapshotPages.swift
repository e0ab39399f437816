import JSONRPC
import Synchronization

/// Large snapshots, read whole once and handed to the model a page at a time.
///
/// An ordinary web page has 5,000–10,000 elements; at about 60 characters an outline line, that
/// is more than a model's context takes in one tool result (many hosts cut results at 25,000
/// tokens). So the bridge reads the tree up to `max_nodes` in one request, keeps the outline,
/// and returns pages of at most ``pageBudget`` characters; a cursor names the next page of the
/// same read, so pages never overlap or skip lines even if the app changes meanwhile.
enum SnapshotPaging {
    /// Characters of outline per page: about 800 lines of 60 characters, some 15,000 tokens.
    static let pageBudget = 48_000

    /// The pages of `lines`, in order, each at most `budget` characters (newlines included),
    /// except a single line longer than that, which is a page of its own.
    static func pages(_ lines: [String], budget: Int = pageBudget) -> [Range<Int>] {
        var pages: [Range<Int>] = []
        var start = 0, size = 0
        for (index, line) in lines.enumerated() {
            let cost = line.utf8.count + 1
            if index > start, size + cost > budget {
                pages.append(start..<index)
                start = index
                size = 0
            }
            size += cost
        }
        if start < lines.count || pages.isEmpty { pages.append(start..<lines.count) }
        return pages
    }

    /// A cursor as the bridge writes it: `s<read>p<page>`, page counted from 1.
    static func cursor(read: Int, page: Int) -> String { "s\(read)p\(page)" }

    static func parse(cursor: String) -> (read: Int, page: Int)? {
        guard cursor.hasPrefix("s"), let p = cursor.firstIndex(of: "p"),
              let read = Int(cursor[cursor.index(after: cursor.startIndex)..<p]),
              let page = Int(cursor[cursor.index(after: p)...]), read > 0, page > 0
        else { return nil }
        return (read, page)
    }
}

/// One snapshot as the daemon returned it, kept for its later pages.
struct SnapshotRead: Sendable {
    var id: Int
    /// The params the read was made with (app, filter, max_nodes, root), to check a cursor's
    /// call against.
    var params: JSONObject
    var lines: [String]
    var pages: [Range<Int>]
    /// Why the daemon's read was incomplete, if it was; repeated on every page.
    var truncation: Truncation?
}

/// Why a snapshot is incomplete, from the daemon's `truncated` flag and its stats.
struct Truncation: Sendable, Equatable {
    var maxNodes: Int64
    var nodes: Int
    /// The app did not deliver its whole tree before the daemon's request deadline.
    var deadlineReached: Bool
    /// Containers that manage their children (big tables, lists) of which only the first 200
    /// children were read.
    var childrenCapped: Int

    init?(result: JSONValue, maxNodes: Int64, nodes: Int) {
        guard result["truncated"]?.boolValue == true else { return nil }
        self.maxNodes = maxNodes
        self.nodes = nodes
        deadlineReached = result["stats"]?["deadline_reached"]?.boolValue == true
        childrenCapped = Int(result["stats"]?["children_capped"]?.intValue ?? 0)
    }

    /// Whether `max_nodes` cut the read (rather than only the deadline or capped tables).
    var byNodeLimit: Bool { Int64(nodes) >= maxNodes || (!deadlineReached && childrenCapped == 0) }

    /// The first line of every page of an incomplete snapshot: loud, and what to do next.
    func notice(app: String) -> String {
        var causes: [String] = []
        if byNodeLimit { causes.append("it stopped at max_nodes \(maxNodes) (\(nodes) elements shown), the rest of the tree is missing") }
        if deadlineReached { causes.append("the app did not deliver its whole tree before deskgate's deadline") }
        if childrenCapped > 0 {
            causes.append("\(childrenCapped) table\(childrenCapped == 1 ? "" : "s") or list\(childrenCapped == 1 ? "" : "s") show only their first 200 rows")
        }
        var next = ["snapshot a part with root set to a ref from this outline", "use find to look for an element by name or role"]
        if byNodeLimit { next.insert("pass a larger max_nodes (up to 100000)", at: 0) }
        return "TRUNCATED: this snapshot of app \(Quote.quoted(app)) is incomplete: " + causes.joined(separator: "; ")
            + ". To see more: " + next.joined(separator: ", or ") + "."
    }
}

/// The last few snapshot reads of one MCP session.
final class SnapshotStore: Sendable {
    private struct State {
        var next = 1
        var reads: [SnapshotRead] = []
    }
    private let state = Mutex(State())
    /// Reads kept for their later pages; older cursors expire (at most ~10 MB at 100,000 lines).
    static let kept = 4

    /// Keeps `lines` as a new read and returns it, paged.
    func store(params: JSONObject, lines: [String], truncation: Truncation?, budget: Int = SnapshotPaging.pageBudget) -> SnapshotRead {
        state.withLock { s in
            let read = SnapshotRead(id: s.next, params: params, lines: lines, pages: SnapshotPaging.pages(lines, budget: budget),
                                    truncation: truncation)
            s.next += 1
            // Only reads with more than one page are ever asked for again.
            if read.pages.count > 1 {
                s.reads.append(read)
                if s.reads.count > Self.kept { s.reads.removeFirst(s.reads.count - Self.kept) }
            }
            return read
        }
    }

    func read(id: Int) -> SnapshotRead? { state.withLock { s in s.reads.first { $0.id == id } } }

    /// Whether this session made a read with this id (kept or not).
    func issued(id: Int) -> Bool { state.withLock { id < $0.next } }
}

/// The words around one page of a snapshot.
enum SnapshotText {
    /// Page `page` (from 1) of `read`, for the app the model named `app`.
    ///
    /// deskgate's block: a TRUNCATED line first when the read was incomplete, then what the page
    /// is (elements, filter, page k of n, the cursor of the next page). The outline lines go in
    /// one fenced block.
    static func page(_ read: SnapshotRead, page: Int, app: String) -> ToolOutcome {
        var own: [String] = []
        if let truncation = read.truncation { own.append(truncation.notice(app: app)) }
        let filter = read.params["filter"]?.stringValue ?? "interactive"
        var summary = "App \(Quote.quoted(app)): \(read.lines.count) element\(read.lines.count == 1 ? "" : "s") (filter \(Quote.vocabulary(filter, fallback: "?"))"
        if let root = read.params["root"]?.stringValue { summary += ", below [ref=\(Quote.bare(root))]" }
        summary += ")"
        let range = read.pages[page - 1]
        if read.pages.count > 1 {
            summary += ", in \(read.pages.count) pages; this is page \(page) (lines \(range.lowerBound + 1)-\(range.upperBound))."
            if page < read.pages.count {
                summary += " Next page: snapshot with the same app and cursor: \"\(SnapshotPaging.cursor(read: read.id, page: page + 1))\"."
            } else {
                summary += " This is the last page."
            }
        } else {
            summary += "."
        }
        own.append(summary)
        guard !range.isEmpty else { return ToolOutcome(text: own.joined(separator: "\n"), isError: false) }
        own.append("The outline follows as app content, one line per element: - ROLE \"NAME\" [ref=REF] (STATES): TEXT. Roles, states and refs are deskgate's; names and text are the app's.")
        return ToolOutcome(text: own.joined(separator: "\n"),
                           appContent: [AppContent(kind: .outline, app: app, text: read.lines[range].joined(separator: "\n"))],
                           isError: false)
    }
}
