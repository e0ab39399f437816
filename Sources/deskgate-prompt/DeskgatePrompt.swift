// deskgate-prompt: the reference prompt helper. Registers with deskgated as the one program
// allowed to ask the person at the desktop, shows each request, and answers with their choice.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Synchronization

@main
struct DeskgatePrompt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deskgate-prompt",
        abstract: "Asks the person at the desktop to approve deskgate requests.",
        discussion: """
            Registers with deskgated as its prompt helper (only executables listed in prompt_agents may) and \
            shows each prompt (a request, a task to approve, a paused task to resume): the verified program \
            first, its own label and every other program- or app-chosen text fenced as «its own words», then \
            one plain sentence of what it wants to do and where, and every choice offered with what it means. \
            Choices other than deny accept input only after --delay seconds. Without --gui, stdin must be a \
            terminal (a person's keyboard, never a pipe).
            """,
        version: DeskgateAPI.versionText)

    @Option(help: "Daemon socket path (default: $DESKGATE_SOCKET or the XDG runtime socket).")
    var socket: String?

    @Flag(help: "Show prompts as zenity dialogs instead of in this terminal.")
    var gui = false

    @Option(help: "Seconds before allow choices accept input (against click- and type-through).")
    var delay: Double = 1.5

    func run() async throws {
        if gui, Zenity.path == nil {
            Output.error("deskgate-prompt: --gui needs zenity, which is not installed; using the terminal")
        }
        let useZenity = gui && Zenity.path != nil
        // In a terminal, answers must come from a person at a keyboard: a pipe or file on stdin
        // could be written by the very program asking for approval.
        if !useZenity, isatty(STDIN_FILENO) == 0 {
            Output.error("deskgate-prompt: stdin is not a terminal, so answers could come from a program instead of a person; refusing to run. Start it in a terminal, or use --gui (zenity dialogs).")
            throw ExitCode(2)
        }
        let client: DeskgateClient
        do {
            client = try await DeskgateClient.connect(socketPath: socket)
            // The GUI helper shows a Pause button while agents are connected: it asks to hear how many.
            _ = try await client.call("agent.register", useZenity ? ["notify_clients": true] : .object([:]))
        } catch let error as RPCError {
            Output.error("deskgate-prompt: cannot register: \(error.message)")
            throw ExitCode(2)
        } catch {
            Output.error("deskgate-prompt: \(error)")
            throw ExitCode(1)
        }
        let presenter: any Presenter = useZenity ? ZenityPresenter(delay: delay) : TerminalPresenter(delay: delay)
        if presenter is TerminalPresenter {
            _ = StdinLines.shared  // read (and time-stamp) input from now on, so type-ahead is recognised
        }
        Output.line("deskgate-prompt: registered; waiting for requests (Ctrl-C to stop).")

        // The Pause button follows the agents' count in order, one change at a time.
        let pauseButton = useZenity ? await PauseButton.start(client: client) : nil
        let agentCounts = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(8))
        let buttonWorker = Task {
            for await agents in agentCounts.stream { await pauseButton?.agentsChanged(agents) }
        }
        defer { buttonWorker.cancel() }
        let cancelled = CancelledPrompts()
        let queue = AsyncStream<Request>.makeStream()
        // Prompts are shown one at a time, in order; cancellations are read meanwhile.
        let worker = Task {
            for await request in queue.stream {
                let promptID = request.params?["prompt_id"]?.stringValue ?? ""
                if cancelled.contains(promptID) { continue }
                let choice = await presenter.ask(PromptView(request.params ?? .null), cancelled: cancelled)
                guard let choice else { continue }  // withdrawn by the daemon: no answer
                try? await client.respond(to: request.id, result: .success(["choice": .string(choice)]))
            }
        }
        for await message in client.incoming {
            switch message {
            case .request(let request) where request.method == "agent.prompt":
                queue.continuation.yield(request)
            case .request(let request):
                try? await client.respond(to: request.id, result: .failure(.methodNotFound(request.method)))
            case .notification(let notification) where notification.method == "agent.cancel":
                if let id = notification.params?["prompt_id"]?.stringValue { cancelled.insert(id) }
            case .notification(let notification) where notification.method == "agent.clients":
                if let agents = notification.params?["agents"]?.intValue { agentCounts.continuation.yield(Int(agents)) }
            default:
                break
            }
        }
        queue.continuation.finish()
        worker.cancel()
        Output.error("deskgate-prompt: the daemon closed the connection")
        throw ExitCode(1)
    }
}

/// Prompt ids the daemon withdrew (`agent.cancel`).
final class CancelledPrompts: Sendable {
    private let ids = Mutex<Set<String>>([])
    func insert(_ id: String) { ids.withLock { _ = $0.insert(id) } }
    func contains(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }
}

protocol Presenter: Sendable {
    /// The person's choice, or nil when the prompt was withdrawn or timed out here.
    func ask(_ view: PromptView, cancelled: CancelledPrompts) async -> String?
}

// MARK: - Terminal

/// Reads stdin lines on a thread of its own, stamped with their arrival time. Unlike an
/// AsyncStream, a waiter that gives up (its prompt was withdrawn) does not end the input.
final class StdinLines: Sendable {
    typealias Line = (text: String, time: ContinuousClock.Instant)
    private struct State {
        var lines: [Line] = []
        var waiter: (id: UInt64, continuation: CheckedContinuation<Line?, Never>)?
        var eof = false
        var nextID: UInt64 = 0
    }

    static let shared = StdinLines()
    private let state = Mutex(State())

    private init() {
        let thread = Thread { [self] in
            while let text = readLine(strippingNewline: true) {
                let line: Line = (text, ContinuousClock.now)
                let waiter = self.state.withLock { s -> CheckedContinuation<Line?, Never>? in
                    if let waiter = s.waiter {
                        s.waiter = nil
                        return waiter.continuation
                    }
                    s.lines.append(line)
                    return nil
                }
                waiter?.resume(returning: line)
            }
            let waiter = self.state.withLock { s -> CheckedContinuation<Line?, Never>? in
                s.eof = true
                defer { s.waiter = nil }
                return s.waiter?.continuation
            }
            waiter?.resume(returning: nil)
        }
        thread.name = "deskgate-prompt-stdin"
        thread.start()
    }

    /// Drops lines typed before `instant` (type-ahead must not answer a prompt nobody has read).
    func discard(before instant: ContinuousClock.Instant) { state.withLock { $0.lines.removeAll { $0.time < instant } } }

    /// The next line; nil at end of input or when the task is cancelled.
    func next() async -> Line? {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Line?, Never>) in
                let ready = state.withLock { s -> Line?? in
                    if !s.lines.isEmpty { return .some(s.lines.removeFirst()) }
                    if s.eof || Task.isCancelled { return .some(nil) }
                    s.waiter = (id, continuation)
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Line?, Never>? in
                guard let waiter = s.waiter, waiter.id == id else { return nil }
                s.waiter = nil
                return waiter.continuation
            }
            waiter?.resume(returning: nil)
        }
    }
}

struct TerminalPresenter: Presenter {
    let delay: Double

    func ask(_ view: PromptView, cancelled: CancelledPrompts) async -> String? {
        let shown = ContinuousClock.now
        Output.line("\n\u{07}──────── \(view.title) ────────")
        for line in view.terminalLines { Output.line(line) }
        Output.line(PromptView.legend)
        Output.line("Choices:")
        for (index, choice) in view.choices.enumerated() {
            Output.line("  \(PromptChoice.key(choice, at: index))) \(PromptChoice.label(choice))")
        }
        Output.line("Answer within \(view.timeout) s. Choices other than deny accept input after \(delay) s.")
        Output.prompt("> ")
        StdinLines.shared.discard(before: shown)
        let deadline = shown + .seconds(view.timeout)
        let enabled = shown + .milliseconds(Int(delay * 1000))

        // Wait for a line, a withdrawal or the deadline, whichever comes first.
        return await withTaskGroup(of: String?.self) { group in
            group.addTask {
                while let (line, time) = await StdinLines.shared.next() {
                    let key = line.trimmingCharacters(in: .whitespaces).lowercased()
                    let keys = view.choices.enumerated().map { PromptChoice.key($1, at: $0) }
                    guard let index = view.choices.indices.first(where: { keys[$0] == key || view.choices[$0] == key }) else {
                        Output.prompt("Type one of \(keys.joined(separator: ", ")): ")
                        continue
                    }
                    let choice = view.choices[index]
                    if choice != "deny", time < enabled {
                        // Typed before the choices were enabled (or before the prompt appeared).
                        Output.prompt("(ignored: typed too early; read the request, then answer) > ")
                        continue
                    }
                    return choice
                }
                return nil
            }
            group.addTask {
                while ContinuousClock.now < deadline, !cancelled.contains(view.promptID), !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                }
                if Task.isCancelled { return nil }  // answered: nothing to report
                if cancelled.contains(view.promptID) {
                    Output.line("\n(withdrawn: the program cancelled the request or went away)")
                } else {
                    Output.line("\n(timed out: denied)")
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if let first { Output.line("→ \(PromptChoice.label(first))") }
            return first
        }
    }
}

// MARK: - zenity

enum Zenity {
    static let path: String? = ["/usr/bin/zenity", "/usr/local/bin/zenity"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
}

struct ZenityPresenter: Presenter {
    let delay: Double

    func ask(_ view: PromptView, cancelled: CancelledPrompts) async -> String? {
        let deadline = ContinuousClock.now + .seconds(view.timeout)
        var note = ""
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .seconds(1), !cancelled.contains(view.promptID) else { return nil }
            let shown = ContinuousClock.now
            guard let choice = await runDialog(view, note: note, timeout: Int(remaining.components.seconds), cancelled: cancelled) else {
                return cancelled.contains(view.promptID) ? nil : "deny"
            }
            if choice != "deny", ContinuousClock.now - shown < .milliseconds(Int(delay * 1000)) {
                note = "<b>That answer came too quickly to be read; please choose again.</b>\n\n"
                continue
            }
            return choice
        }
    }

    /// Runs one zenity list dialog; nil when it was closed, timed out or withdrawn.
    private func runDialog(_ view: PromptView, note: String, timeout: Int, cancelled: CancelledPrompts) async -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Zenity.path!)
        // A plain list: arrow keys choose, Return answers, Escape (or closing) denies. The hidden
        // first column is the choice's position, so no offered name is ever parsed back.
        var arguments = ["--list", "--title=\(view.title)", "--width=900", "--height=\(200 + 20 * view.markupText.split(separator: "\n").count + 30 * view.choices.count)",
                         "--timeout=\(max(timeout, 1))", "--hide-header", "--ok-label=Answer", "--cancel-label=Deny",
                         "--text=\(note)\(view.markupText)", "--column=n", "--column=choice", "--hide-column=1", "--print-column=1"]
        for (index, choice) in view.choices.enumerated() {
            arguments += [String(index), PromptChoice.label(choice)]
        }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let finished = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in finished.continuation.yield(); finished.continuation.finish() }
        do { try process.run() } catch { return nil }
        let watcher = Task {
            while process.isRunning {
                if cancelled.contains(view.promptID) { process.terminate() }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        for await _ in finished.stream {}
        watcher.cancel()
        guard process.terminationStatus == 0 else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let answer = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let index = Int(answer), view.choices.indices.contains(index) else { return nil }
        return view.choices[index]
    }
}

// MARK: - Output

enum Output {
    static func line(_ text: String) { write(1, text + "\n") }
    static func prompt(_ text: String) { write(1, text) }
    static func error(_ text: String) { write(2, text + "\n") }

    private static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }
}
