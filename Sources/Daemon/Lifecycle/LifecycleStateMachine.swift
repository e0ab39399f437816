/// The daemon's lifecycle as a value: every event (start, start-up finished or failed, a stop or
/// reload request, shutdown finished) moves it to its next state and returns the action the
/// caller must take. It does no I/O; ``DaemonService`` performs the actions, holding it in a
/// mutex, so signal handlers and the start and stop sequence see one order of events.
///
/// States: initial → starting → running → stopping → stopped. A stop or reload requested while
/// starting is remembered and acted on once start-up finishes (the daemon then stops without
/// serving, or reloads its policies first). While stopping, a second stop request cuts the grace
/// for in-flight requests short and reload requests are ignored.
public struct LifecycleStateMachine: Sendable {
    /// The daemon's phase, as logged and shown.
    public enum Phase: String, Sendable {
        case initial, starting, running, stopping, stopped
    }

    private enum State: Equatable {
        case initial
        case starting(stopRequested: Bool, reloadRequested: Bool)
        case running
        case stopping(graceCut: Bool)
        case stopped
    }

    private var state = State.initial

    public init() {}

    public var phase: Phase {
        switch state {
        case .initial: .initial
        case .starting: .starting
        case .running: .running
        case .stopping: .stopping
        case .stopped: .stopped
        }
    }

    // MARK: Start

    public enum StartAction: Equatable, Sendable {
        /// Run the start-up sequence.
        case start
        /// The daemon was started before (a service runs once): refuse.
        case refuse(Phase)
    }

    /// `run()` was called.
    public mutating func start() -> StartAction {
        guard case .initial = state else { return .refuse(phase) }
        state = .starting(stopRequested: false, reloadRequested: false)
        return .start
    }

    public enum StartedAction: Equatable, Sendable {
        /// Serve: report readiness; reload the policies first if a reload was requested while
        /// starting (the files may have changed after start-up read them).
        case serve(reloadFirst: Bool)
        /// A stop was requested while starting: shut down now, without serving.
        case stop
    }

    /// Start-up finished: the socket listens.
    public mutating func startupFinished() -> StartedAction {
        guard case .starting(let stopRequested, let reloadRequested) = state else {
            preconditionFailure("start-up finished in phase \(phase)")
        }
        if stopRequested {
            state = .stopping(graceCut: false)
            return .stop
        }
        state = .running
        return .serve(reloadFirst: reloadRequested)
    }

    /// Start-up failed (the caller undoes what it started, then reports the error).
    public mutating func startupFailed() {
        guard case .starting = state else { preconditionFailure("start-up failed in phase \(phase)") }
        state = .stopping(graceCut: false)
    }

    // MARK: Requests (signals)

    public enum StopAction: Equatable, Sendable {
        /// Begin the graceful shutdown.
        case beginShutdown
        /// Remembered: start-up will stop instead of serving.
        case stopOnceStarted
        /// A second request while stopping: stop waiting for in-flight requests.
        case cutGrace
        /// Nothing to do (already requested, or already stopped).
        case ignore
    }

    /// SIGTERM or SIGINT.
    public mutating func stopRequested() -> StopAction {
        switch state {
        case .initial:
            // Never started: nothing to stop, and nothing will start.
            state = .stopped
            return .ignore
        case .starting(let stopRequested, let reloadRequested):
            state = .starting(stopRequested: true, reloadRequested: reloadRequested)
            return stopRequested ? .ignore : .stopOnceStarted
        case .running:
            state = .stopping(graceCut: false)
            return .beginShutdown
        case .stopping(let graceCut):
            state = .stopping(graceCut: true)
            return graceCut ? .ignore : .cutGrace
        case .stopped:
            return .ignore
        }
    }

    public enum ReloadAction: Equatable, Sendable {
        /// Reload the policies now.
        case reload
        /// Remembered: reloaded once start-up finishes.
        case reloadOnceStarted
        /// Nothing to do: not started, stopping or stopped (a reload would write policy records
        /// to an audit log about to close, for a daemon that serves no more requests).
        case ignore
    }

    /// SIGHUP.
    public mutating func reloadRequested() -> ReloadAction {
        switch state {
        case .starting(let stopRequested, _):
            state = .starting(stopRequested: stopRequested, reloadRequested: true)
            return stopRequested ? .ignore : .reloadOnceStarted
        case .running:
            return .reload
        case .initial, .stopping, .stopped:
            return .ignore
        }
    }

    // MARK: Stop

    /// Whether a second stop request has cut the grace short.
    public var graceCut: Bool {
        if case .stopping(true) = state { return true }
        return false
    }

    /// The shutdown sequence finished.
    public mutating func shutdownFinished() {
        guard case .stopping = state else { preconditionFailure("shutdown finished in phase \(phase)") }
        state = .stopped
    }
}
