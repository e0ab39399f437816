#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

/// The real apps `scripts/headless-desktop.sh --app firefox|chromium|writer|calc` started for this
/// run (docs/apps.md). They start once per run; each test opens a fresh page or document of its
/// own in the running app (`headless-desktop.sh --open`) and talks to a daemon of its own.
enum RealApps {
    static let environment = ProcessInfo.processInfo.environment

    /// The kinds the harness started (`DESKGATE_REAL_APPS`).
    static var started: Set<String> { Set((environment["DESKGATE_REAL_APPS"] ?? "").split(separator: " ").map(String.init)) }

    /// Set by `scripts/run-tests.sh` for its real-app stage: the suites must run there, never skip.
    static var required: Bool { environment["DESKGATE_REQUIRE_REAL_APPS"] == "1" }

    /// Whether the suites of `kind` run: the app was started, or it is required (and its tests
    /// then fail saying it is missing).
    static func enabled(_ kind: String) -> Bool { started.contains(kind) || required }

    /// The served directory and its `http://127.0.0.1:PORT` origin.
    static var webDirectory: String { environment["DESKGATE_WEB_DIR"] ?? "" }
    static var webURL: String { environment["DESKGATE_WEB_URL"] ?? "" }

    /// Fails the test unless the harness started `kind`.
    static func require(_ kind: String) throws {
        guard started.contains(kind) else {
            throw TestFailure("\(kind) was not started: run under scripts/headless-desktop.sh --app \(kind) (DESKGATE_REAL_APPS: \(environment["DESKGATE_REAL_APPS"] ?? "unset"))")
        }
    }

    /// Opens `target` (a URL, or a file for LibreOffice) in the running `kind` and waits until it
    /// is in the tree (`scripts/headless-desktop.sh --open`).
    static func open(_ kind: String, _ target: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [BuiltProducts.packageRoot + "/scripts/headless-desktop.sh", "--open", kind, target]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("opening \(target) in \(kind) failed: \(message)") }
    }

    /// AT-SPI names: LibreOffice's Writer and Calc windows belong to one `soffice` app.
    static func appName(_ kind: String) -> String {
        switch kind {
        case "firefox": "Firefox"
        case "chromium": "Chromium"
        default: "soffice"
        }
    }

    /// What an agent may do with the real apps, nothing else.
    static let policy = "default = \"deny\"\n" + ["Firefox", "Chromium", "soffice"].map { app in
        """
        [[rule]]
        id = "\(app)"
        effect = "allow"
        actions = ["observe", "read", "act", "write"]
        app = "\(app)"

        """
    }.joined()

    /// A short random id that makes a test's page, document and names its own.
    static func uniqueID() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 36) }
}

/// A web page a test writes into the served directory.
struct WebPage {
    let title: String
    let url: String
    let path: String

    /// Writes `body` as `NAME-ID.html` with title `TITLE ID`.
    init(name: String, title: String, id: String, body: String) throws {
        self.title = "\(title) \(id)"
        let file = "\(name)-\(id).html"
        path = RealApps.webDirectory + "/" + file
        url = RealApps.webURL + "/" + file
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(self.title)</title></head>
            <body>
            \(body)
            </body></html>
            """
        try html.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A signup form: labelled text, email and password inputs (the password holds `password`),
    /// a select, a range slider, two check boxes, submit and reset buttons, a result line that
    /// says what was submitted, and a link to a second page (also written) titled `Second page ID`.
    static func form(id: String, password: String) throws -> (form: WebPage, next: WebPage) {
        let next = try WebPage(name: "next", title: "Second page", id: id,
                               body: "<h1>You followed the link</h1><p>Arrived \(id)</p>")
        let form = try WebPage(name: "form", title: "Signup", id: id, body: """
            <h1>Signup</h1>
            <form id="signup" action="javascript:void 0">
            <p><label for="name">Full name</label> <input id="name" type="text"></p>
            <p><label for="email">Email</label> <input id="email" type="email"></p>
            <p><label for="pw">Password</label> <input id="pw" type="password" value="\(password)"></p>
            <p><label for="color">Color</label> <select id="color"><option>Red</option><option>Green</option><option>Blue</option></select></p>
            <p><label for="vol">Volume</label> <input id="vol" type="range" min="0" max="10" value="3"></p>
            <p><label><input type="checkbox" id="agree"> I agree</label> <label><input type="checkbox" id="news" checked> Newsletter</label></p>
            <p><button type="submit">Send</button> <button type="button" onclick="document.getElementById('result').textContent = 'Reset pressed'">Reset</button></p>
            </form>
            <p id="result">Not sent</p>
            <p><a href="\(URL(fileURLWithPath: next.path).lastPathComponent)">Next page</a></p>
            <script>
            document.getElementById('signup').addEventListener('submit', function (event) {
              event.preventDefault();
              document.getElementById('result').textContent = 'Submitted: agree=' + document.getElementById('agree').checked +
                ' volume=' + document.getElementById('vol').value + ' name=[' + document.getElementById('name').value + ']';
            });
            </script>
            """)
        return (form, next)
    }
}

/// Flat ODF documents (`.fodt`, `.fods`) a test writes: plain XML, no binaries checked in.
enum OfficeDocument {
    static let header = #"<?xml version="1.0" encoding="UTF-8"?>"#

    /// A Writer document: a heading and plain (not bold) paragraphs.
    static func writer(at path: String, heading: String, paragraphs: [String]) throws {
        let body = paragraphs.map { "<text:p>\(escaped($0))</text:p>" }.joined(separator: "\n")
        try """
            \(header)
            <office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.text">
            <office:body><office:text>
            <text:p>\(escaped(heading))</text:p>
            \(body)
            </office:text></office:body></office:document>
            """.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A Calc sheet named `sheet` with `rows` (strings, or numbers when they parse as one).
    static func calc(at path: String, sheet: String, rows: [[String]]) throws {
        let table = rows.map { row in
            "<table:table-row>" + row.map { cell in
                if let number = Double(cell) {
                    return #"<table:table-cell office:value-type="float" office:value="\#(number)"><text:p>\#(cell)</text:p></table:table-cell>"#
                }
                return #"<table:table-cell office:value-type="string"><text:p>\#(escaped(cell))</text:p></table:table-cell>"#
            }.joined() + "</table:table-row>"
        }.joined(separator: "\n")
        try """
            \(header)
            <office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
            <office:body><office:spreadsheet>
            <table:table table:name="\(escaped(sheet))">
            \(table)
            </table:table>
            </office:spreadsheet></office:body></office:document>
            """.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// A test's view of one subtree (a LibreOffice window, a web document) through the daemon, as an
/// agent sees it: a snapshot rooted at a window, and the nodes of the subtree by role and name.
struct AppView {
    let client: DeskgateClient
    let app: String
    /// The snapshot's root (a window).
    let root: String
    /// The subtree kept (a web document in the window): a snapshot rooted at a web document
    /// itself holds the document alone today (RealAppsPendingFixTests).
    let within: String?
    var nodes: [JSONValue] = []

    init(_ client: DeskgateClient, app: String, root: String, within: String? = nil) {
        self.client = client
        self.app = app
        self.root = root
        self.within = within
    }

    /// Takes a fresh snapshot of the subtree (with `include` extras).
    mutating func refresh(include: [String] = [], filter: String = "all") async throws {
        let snapshot = try await client.call("tree.snapshot", [
            "app": .string(app), "root": .string(root), "max_nodes": 20000, "filter": .string(filter),
            "include": .array(include.map(JSONValue.string)),
        ])
        nodes = snapshot["nodes"]?.arrayValue ?? []
        if let within { nodes = Self.subtree(of: within, in: nodes) }
    }

    /// `top` and its descendants among `nodes` (by their `parent` refs), in the snapshot's order.
    static func subtree(of top: String, in nodes: [JSONValue]) -> [JSONValue] {
        var kept: Set<String> = [top]
        return nodes.filter { node in
            guard let ref = node["ref"]?.stringValue else { return false }
            if ref == top { return true }
            // Depth-first order: a parent comes before its children.
            guard let parent = node["parent"]?.stringValue, kept.contains(parent) else { return false }
            kept.insert(ref)
            return true
        }
    }

    /// Nodes with this role (and name), in tree order.
    func all(_ role: String, _ name: String? = nil) -> [JSONValue] {
        nodes.filter { $0["role"]?.stringValue == role && (name == nil || $0["name"]?.stringValue == name) }
    }

    /// The ref of the one node with this role and name; fails the test if there is none.
    func ref(_ role: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let found = all(role, name)
        guard let ref = found.first?["ref"]?.stringValue else {
            let seen = nodes.compactMap { node -> String? in
                guard let role = node["role"]?.stringValue, let name = node["name"]?.stringValue, !name.isEmpty else { return nil }
                return "\(role) \"\(name)\""
            }
            throw TestFailure("no \(role) \"\(name)\" under \(root); named nodes: \(seen.prefix(80).joined(separator: ", "))")
        }
        #expect(found.count == 1, "\(found.count) nodes \(role) \"\(name)\"", sourceLocation: sourceLocation)
        return ref
    }

    /// Whether a node's name or text contains `text` (Chromium gives text nodes of their own,
    /// named by the text; Firefox keeps the text in the paragraph: snapshot with `text`).
    func mentions(_ text: String) -> Bool {
        nodes.contains { ($0["name"]?.stringValue ?? "").contains(text) || ($0["text"]?.stringValue ?? "").contains(text) }
    }
}

extension DeskgateClient {
    /// The ref of the first element of `app` with this role and name, once there is one.
    func waitForElement(app: String, role: String, name: String, timeout: Double = 20) async throws -> String {
        var ref: String?
        _ = await Flows.eventually(timeout: timeout) {
            let found = try? await call("elements.find", ["app": .string(app), "role": .string(role), "name": .string(name)])
            ref = found?["nodes"]?.arrayValue?.first?["ref"]?.stringValue
            return ref != nil
        }
        guard let ref else { throw TestFailure("no \(role) \"\(name)\" in \(app) after \(timeout) s") }
        return ref
    }

    /// The ref of `app`'s window whose name starts with `prefix`, once there is one.
    func waitForWindow(app: String, prefix: String, timeout: Double = 20) async throws -> String {
        var ref: String?
        _ = await Flows.eventually(timeout: timeout) {
            let apps = try? await call("apps.list")
            let windows = apps?.arrayValue?.filter { $0["name"]?.stringValue == app }.flatMap { $0["windows"]?.arrayValue ?? [] }
            ref = windows?.first { ($0["name"]?.stringValue ?? "").hasPrefix(prefix) }?["ref"]?.stringValue
            return ref != nil
        }
        guard let ref else { throw TestFailure("no window \"\(prefix)…\" of \(app) after \(timeout) s") }
        return ref
    }

    /// The element's states (`element.get`).
    func states(_ ref: String) async throws -> [String] {
        try await call("element.get", ["ref": .string(ref)])["states"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }
}
