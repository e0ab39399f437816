import Synchronization

/// A count of signals that one waiter can wait on with a timeout: the app announced something
/// (an event of the element an operation waits for), or the time ran out.
///
/// Signals that arrive while nobody waits are kept, so none is lost between two waits.
final class Pulse: Sendable {
    private struct State {
        var pending = 0
        var waiter: (id: UInt64, continuation: CheckedContinuation<Bool, Never>)?
        var nextID: UInt64 = 0
        /// The newest wait whose time ran out (or was cancelled) before it was installed.
        var expiredUpTo: UInt64 = 0
        var closed = false
        /// Paths of the elements that announced the signals, newest last (at most 256).
        var sources: [String] = []
    }

    private let state = Mutex(State())
    private let sleep: @Sendable (Duration) async throws -> Void

    /// `sleep` is how the timeout waits (the daemon passes its event-loop timer).
    init(sleep: @escaping @Sendable (Duration) async throws -> Void) {
        self.sleep = sleep
    }

    /// One signal (announced by the element at `source`, when known): wakes the waiter, or is
    /// kept for the next wait.
    func signal(from source: String? = nil) {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if let source {
                if s.sources.count == 256 { s.sources.removeFirst() }
                s.sources.append(source)
            }
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter.continuation
            }
            s.pending += 1
            return nil
        }
        waiter?.resume(returning: true)
    }

    /// The paths of the elements that announced signals since the last call, oldest first.
    func takeSources() -> [String] {
        state.withLock { s in
            defer { s.sources = [] }
            return s.sources
        }
    }

    /// Whether ``close()`` was called: no signal will come.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Drops the signals kept so far.
    func reset() {
        state.withLock { $0.pending = 0 }
    }

    /// Ends every wait (false) now and later: the source of the signals is gone.
    func close() {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.closed = true
            defer { s.waiter = nil }
            return s.waiter?.continuation
        }
        waiter?.resume(returning: false)
    }

    /// True as soon as a signal arrives (or one is kept), false when `timeout` passes first, the
    /// pulse is closed or the task is cancelled. One waiter at a time.
    func wait(_ timeout: Duration) async -> Bool {
        guard timeout > .zero else { return take() }
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        let timer = Task { [sleep] in
            try? await sleep(timeout)
            self.expire(id)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate = state.withLock { s -> Bool? in
                    if s.pending > 0 {
                        s.pending -= 1
                        return true
                    }
                    if s.closed || id <= s.expiredUpTo { return false }
                    precondition(s.waiter == nil, "Pulse has one waiter at a time")
                    s.waiter = (id, continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            self.expire(id)
        }
    }

    /// A kept signal, without waiting.
    private func take() -> Bool {
        state.withLock { s in
            guard s.pending > 0 else { return false }
            s.pending -= 1
            return true
        }
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            guard let waiter = s.waiter, waiter.id == id else {
                s.expiredUpTo = max(s.expiredUpTo, id)
                return nil
            }
            s.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: false)
    }
}
