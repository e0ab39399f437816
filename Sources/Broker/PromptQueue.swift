/// Who may show a prompt next: per client process, one request at the prompt (the active slot)
/// and a bounded queue behind it; across clients, a bounded number waiting in all.
///
/// A state machine in the swift-nio style: every event is a mutating call that returns what the
/// broker must do (resume a waiting request, withdraw a prompt); it holds no continuations and
/// does no I/O, so it is tested directly (PromptQueueTests).
struct PromptQueue: Sendable {
    /// One request of a client, as the queue knows it.
    struct Ticket: Sendable, Hashable {
        var token: UInt64
        var clientPid: Int32
        var connectionID: UInt64
        /// The JSON-RPC id of the request on its connection (`rpc.cancel` names it).
        var requestID: String?
    }

    /// What a request gets when it asks to prompt.
    enum Admission: Sendable, Equatable {
        /// Its turn: it holds the client's slot and may prompt.
        case go
        /// The bounds are full: denied at once.
        case rateLimited
        /// It was cancelled before its turn.
        case cancelled
    }

    private struct Active: Sendable {
        var ticket: Ticket
        var cancelled = false
        var promptID: String?
    }

    private struct ClientQueue: Sendable {
        var active: Active?
        var waiters: [Ticket] = []
    }

    let maxWaitingPerClient: Int
    let maxWaitingTotal: Int
    private var queues: [Int32: ClientQueue] = [:]
    private var waitingTotal = 0
    /// Tokens cancelled before they joined the queue.
    private var cancelledEarly: Set<UInt64> = []

    init(maxWaitingPerClient: Int, maxWaitingTotal: Int) {
        self.maxWaitingPerClient = maxWaitingPerClient
        self.maxWaitingTotal = maxWaitingTotal
    }

    /// Asks for the client's slot. Nil: the request waits (the broker keeps its continuation
    /// under the token until ``release(_:)`` or ``cancel(where:)`` names it). The bound is
    /// checked and taken in this one step: checked in one and taken in another, a burst of
    /// concurrent requests would all slip past it.
    mutating func admit(_ ticket: Ticket) -> Admission? {
        if cancelledEarly.remove(ticket.token) != nil { return .cancelled }
        if queues[ticket.clientPid]?.active == nil {
            queues[ticket.clientPid, default: ClientQueue()].active = Active(ticket: ticket)
            return .go
        }
        if queues[ticket.clientPid]!.waiters.count >= maxWaitingPerClient || waitingTotal >= maxWaitingTotal {
            return .rateLimited
        }
        queues[ticket.clientPid]!.waiters.append(ticket)
        waitingTotal += 1
        return nil
    }

    /// The request ends: frees its client's slot. Returns the waiter that now holds it (to be
    /// resumed with ``Admission/go``; it decides again, so grants made meanwhile count).
    mutating func release(_ ticket: Ticket) -> UInt64? {
        cancelledEarly.remove(ticket.token)
        guard var queue = queues[ticket.clientPid] else { return nil }
        var next: UInt64?
        if queue.active?.ticket.token == ticket.token {
            queue.active = nil
            if !queue.waiters.isEmpty {
                let waiter = queue.waiters.removeFirst()
                waitingTotal -= 1
                queue.active = Active(ticket: waiter)
                next = waiter.token
            }
        }
        queues[ticket.clientPid] = queue.active == nil && queue.waiters.isEmpty ? nil : queue
        return next
    }

    /// Whether this request holds its client's slot and was not cancelled.
    func isActive(_ ticket: Ticket) -> Bool {
        guard let active = queues[ticket.clientPid]?.active else { return false }
        return active.ticket.token == ticket.token && !active.cancelled
    }

    /// Records the prompt the active request is showing (so cancelling it withdraws the prompt).
    mutating func showing(_ promptID: String, for ticket: Ticket) {
        guard queues[ticket.clientPid]?.active?.ticket.token == ticket.token else { return }
        queues[ticket.clientPid]!.active!.promptID = promptID
    }

    /// What cancelling some requests means.
    struct Cancelled: Sendable, Equatable {
        /// Waiters taken out of their queue: resume each with ``Admission/cancelled``.
        var waiters: [UInt64] = []
        /// Prompts of cancelled active requests: withdraw each from the helper.
        var prompts: [String] = []
    }

    /// Cancels the requests `matches` selects: waiters leave their queue, active ones are marked
    /// (nothing is remembered for them) and their prompts withdrawn.
    mutating func cancel(where matches: (Ticket) -> Bool) -> Cancelled {
        var result = Cancelled()
        for (pid, var queue) in queues {
            if var active = queue.active, matches(active.ticket) {
                active.cancelled = true
                if let promptID = active.promptID { result.prompts.append(promptID) }
                queue.active = active
            }
            let doomed = queue.waiters.filter(matches)
            if !doomed.isEmpty {
                queue.waiters.removeAll(where: matches)
                waitingTotal -= doomed.count
                result.waiters += doomed.map(\.token)
            }
            queues[pid] = queue
        }
        return result
    }

    /// Cancels one request by token, also before it has joined the queue.
    mutating func cancel(token: UInt64) -> Cancelled {
        let result = cancel { $0.token == token }
        if result.waiters.isEmpty, !queues.values.contains(where: { $0.active?.ticket.token == token }) {
            cancelledEarly.insert(token)
        }
        return result
    }

    /// Requests waiting in all queues.
    var waiting: Int { waitingTotal }
}
