@testable import Broker
import JSONRPC
import Testing

/// The prompt queue and prompt sessions are state machines: tested by their transitions alone.
@Suite("Prompt queue and sessions")
struct PromptStateTests {
    func ticket(_ token: UInt64, pid: Int32 = 10, connection: UInt64 = 1) -> PromptQueue.Ticket {
        PromptQueue.Ticket(token: token, clientPid: pid, connectionID: connection, requestID: nil)
    }

    @Test("one request per client prompts; the rest wait in order, within both bounds")
    func admission() {
        var queue = PromptQueue(maxWaitingPerClient: 2, maxWaitingTotal: 3)
        #expect(queue.admit(ticket(1)) == .go)
        #expect(queue.admit(ticket(2)) == nil)
        #expect(queue.admit(ticket(3)) == nil)
        #expect(queue.admit(ticket(4)) == .rateLimited, "per-client bound")
        #expect(queue.admit(ticket(5, pid: 11)) == .go, "another client has its own slot")
        #expect(queue.admit(ticket(6, pid: 11)) == nil)
        #expect(queue.admit(ticket(7, pid: 12)) == .go)
        #expect(queue.admit(ticket(8, pid: 12)) == .rateLimited, "total bound: 3 waiting")
        #expect(queue.waiting == 3)
        #expect(queue.release(ticket(1)) == 2)
        #expect(queue.isActive(ticket(2)))
        #expect(queue.release(ticket(2)) == 3)
        #expect(queue.release(ticket(3)) == nil)
        #expect(!queue.isActive(ticket(3)))
        #expect(queue.waiting == 1)
    }

    @Test("cancelling: a waiter leaves the queue, the active request loses its prompt, an early cancel sticks")
    func cancelling() {
        var queue = PromptQueue(maxWaitingPerClient: 8, maxWaitingTotal: 8)
        #expect(queue.admit(ticket(1)) == .go)
        queue.showing("p1", for: ticket(1))
        #expect(queue.admit(ticket(2)) == nil)
        #expect(queue.cancel(token: 2) == PromptQueue.Cancelled(waiters: [2], prompts: []))
        #expect(queue.cancel(token: 1) == PromptQueue.Cancelled(waiters: [], prompts: ["p1"]))
        #expect(!queue.isActive(ticket(1)), "a cancelled request remembers nothing")
        #expect(queue.release(ticket(1)) == nil, "the cancelled waiter is gone")
        // Cancelled before it ever reached the queue (the task was cancelled on the way).
        #expect(queue.cancel(token: 9).waiters.isEmpty)
        #expect(queue.admit(ticket(9)) == .cancelled)
        // A connection's requests, by predicate.
        #expect(queue.admit(ticket(20, connection: 5)) == .go)
        #expect(queue.admit(ticket(21, connection: 5)) == nil)
        #expect(queue.admit(ticket(22, connection: 6)) == nil)
        let gone = queue.cancel { $0.connectionID == 5 }
        #expect(gone.waiters == [21])
        #expect(queue.release(ticket(20, connection: 5)) == 22)
    }

    @Test("a prompt ends once; an answer counts only from the connection it was sent to")
    func sessions() {
        var sessions = PromptSessions()
        sessions.start(.init(id: "a", token: 1, helperConnection: 7))
        sessions.start(.init(id: "b", token: 2, helperConnection: 7))
        #expect(sessions.end("a", .answer(["choice": "allow_once"]), from: 8) == nil, "another connection's answer")
        #expect(sessions.end("a", .answer(["choice": "allow_once"]), from: 7)?.token == 1)
        #expect(sessions.end("a", .timeout, from: nil) == nil, "already ended")
        #expect(sessions.shown(to: 7) == ["b"])
        #expect(sessions.end("b", .helperFailed("gone"), from: nil)?.token == 2)
        #expect(sessions.count == 0)
        #expect(PromptSessions.Ending.answer(["choice": "deny"]).label == "answered deny")
    }
}
