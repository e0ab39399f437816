#if canImport(Glibc)
import Glibc
#endif
import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

/// A document of the test's own, open in the LibreOffice the harness started once
/// (`scripts/headless-desktop.sh --app writer --app calc`), seen through a daemon of the test's own.
struct OfficeSession {
    let daemon: DaemonProcess
    let client: DeskgateClient
    let directory: TempDirectory
    let window: String
    var view: AppView

    /// Writes the document with `write(path)` as `NAME-ID.EXT`, opens it in the running soffice
    /// and finds its window.
    static func open(_ kind: String, file: String, write: (String) throws -> Void) async throws -> OfficeSession {
        try RealApps.require(kind)
        let directory = TempDirectory("deskgate-\(kind)")
        let path = directory.file(file)
        try write(path)
        let daemon = try DaemonProcess(userPolicy: RealApps.policy)
        try RealApps.open(kind, path)
        let client = try await daemon.client()
        let window = try await client.waitForWindow(app: "soffice", prefix: file + " - ")
        var view = AppView(client, app: "soffice", root: window)
        try await view.refresh(include: ["text", "value"])
        return OfficeSession(daemon: daemon, client: client, directory: directory, window: window, view: view)
    }

    /// Stops the daemon; the window stays open (closing a modified document asks to save).
    func finish() {
        client.closeNow()
        daemon.stop()
        directory.remove()
    }
}

@Suite("Real apps: LibreOffice Writer", .serialized, .enabled(if: RealApps.enabled("writer"), "needs scripts/headless-desktop.sh --app writer"))
struct RealAppsWriterTests {
    @Test("type into a paragraph (EditableText), then toggle Bold in the window's tool bar and see it pressed")
    func typeAndBold() async throws {
        let id = RealApps.uniqueID()
        let first = "First paragraph \(id)."
        var session = try await OfficeSession.open("writer", file: "letter-\(id).fodt") { path in
            try OfficeDocument.writer(at: path, heading: "Letter \(id)", paragraphs: [first, "Second paragraph."])
        }
        defer { session.finish() }
        let client = session.client
        let paragraphs = session.view.all("paragraph")
        let paragraph = try #require(paragraphs.first { $0["text"]?.stringValue == first }?["ref"]?.stringValue,
                                     "no paragraph \"\(first)\": \(paragraphs.map { $0["text"] ?? .null })")

        let typed = "Typed by deskgate \(id)"
        let set = try await client.call("text.set", ["ref": .string(paragraph), "value": .string(typed)])
        #expect(set["matches"] == true, "\(set)")
        #expect(try await client.call("text.read", ["ref": .string(paragraph)])["text"]?.stringValue == typed)

        // The caret goes into the (plain) paragraph; the tool bar follows it a moment later.
        _ = try await client.call("element.focus", ["ref": .string(paragraph)])
        let bold = try session.view.ref("toggle button", "Bold")
        #expect(await Flows.eventually { (try? await client.states(bold))?.contains("checked") == false },
                "Bold stayed pressed in a plain paragraph")
        _ = try await client.call("element.activate", ["ref": .string(bold)])
        #expect(await Flows.eventually { (try? await client.states(bold))?.contains("checked") == true },
                "Bold never showed pressed after it was activated")
        try await session.view.refresh(include: ["text"])
        #expect(session.view.all("paragraph").contains { $0["text"]?.stringValue == typed }, "the typed paragraph is gone")
    }

    @Test("the document's paragraphs are in the snapshot with their text; the heading is not a paragraph")
    func readDocument() async throws {
        let id = RealApps.uniqueID()
        let session = try await OfficeSession.open("writer", file: "read-\(id).fodt") { path in
            try OfficeDocument.writer(at: path, heading: "Heading \(id)", paragraphs: (1...5).map { "Line \($0) of \(id)" })
        }
        defer { session.finish() }
        let texts = session.view.all("paragraph").compactMap { $0["text"]?.stringValue }
        #expect(texts.starts(with: ["Heading \(id)"] + (1...5).map { "Line \($0) of \(id)" }), "\(texts)")
        #expect(session.view.all("document text").count == 1)
    }
}

@Suite("Real apps: LibreOffice Calc", .serialized, .enabled(if: RealApps.enabled("calc"), "needs scripts/headless-desktop.sh --app calc"))
struct RealAppsCalcTests {
    /// The first cell of column A in the snapshot (the daemon reads 200 cells of a sheet's
    /// 2^31 around the one at the table's middle point; docs/apps.md), else the first cell.
    static func cell(in view: AppView) throws -> (ref: String, name: String) {
        let cells = view.all("table cell")
        let cell = cells.first { ($0["name"]?.stringValue ?? "").range(of: #"^A[0-9]+$"#, options: .regularExpression) != nil } ?? cells.first
        guard let ref = cell?["ref"]?.stringValue, let name = cell?["name"]?.stringValue else {
            throw TestFailure("no table cell in the snapshot of the sheet")
        }
        return (ref, name)
    }

    @Test("type a number into a cell: Value.CurrentValue, and the cell's text shows it")
    func typeNumber() async throws {
        let id = RealApps.uniqueID()
        let session = try await OfficeSession.open("calc", file: "sheet-\(id).fods") { path in
            try OfficeDocument.calc(at: path, sheet: "Budget", rows: [["Item", "Amount"], ["Rent", "1200"]])
        }
        defer { session.finish() }
        let client = session.client
        #expect(session.view.all("table", "Sheet Budget").count == 1)
        let (cell, name) = try Self.cell(in: session.view)
        let result = try await client.call("value.set", ["ref": .string(cell), "value": 4711])
        #expect(result["value"]?.doubleValue == 4711, "\(name): \(result)")
        #expect(await Flows.eventually {
            (try? await client.call("text.read", ["ref": .string(cell)]))?["text"]?.stringValue == "4711"
        }, "cell \(name) does not show 4711")
        #expect(try await client.call("element.get", ["ref": .string(cell)])["value"]?["current"]?.doubleValue == 4711)
    }

    @Test("a cell has no EditableText in LibreOffice 7.4: text.set is refused and the cell keeps its content")
    func textRefused() async throws {
        let id = RealApps.uniqueID()
        let session = try await OfficeSession.open("calc", file: "text-\(id).fods") { path in
            try OfficeDocument.calc(at: path, sheet: "Notes", rows: [["Note"]])
        }
        defer { session.finish() }
        let client = session.client
        let (cell, name) = try Self.cell(in: session.view)
        let before = try await client.call("text.read", ["ref": .string(cell)])["text"]
        let refused = await Flows.failure(client, "text.set", ["ref": .string(cell), "value": "hello"])
        #expect(refused?.code == .notSupported, "\(name): \(String(describing: refused))")
        #expect(try await client.call("text.read", ["ref": .string(cell)])["text"] == before)
    }
}
