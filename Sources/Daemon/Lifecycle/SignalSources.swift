#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Signal handling for the daemon: one `DispatchSource` per signal, all on one serial queue, so
/// handlers run one at a time and in arrival order.
///
/// Why a serial queue of our own: its work runs on libdispatch's overcommit threads, which do not
/// arm the 1 Hz pool monitor that the global (non-overcommit) queues arm (see ``GlobalExecutor``).
///
/// No `signal(SIG_IGN)` first: on Linux libdispatch reads signals from a signalfd and installs a
/// handler of its own when a source is registered. Setting `SIG_IGN` before that would silently
/// drop a signal arriving in between; without it such a signal has its default action, at the
/// very start of ``DaemonService/run()`` when nothing exists yet to clean up.
// @unchecked: dispatch sources are thread-safe objects, and the array never changes.
final class SignalSources: @unchecked Sendable {
    private let queue: DispatchQueue
    private let sources: [any DispatchSourceSignal]

    private init(queue: DispatchQueue, sources: [any DispatchSourceSignal]) {
        self.queue = queue
        self.sources = sources
    }

    /// Installs sources for `signals` and returns once each is registered with the kernel, so a
    /// signal sent after this returns reaches `handler` (on the serial queue).
    static func install(_ signals: [Int32], label: String, handler: @escaping @Sendable (Int32) -> Void) async -> SignalSources {
        let queue = DispatchQueue(label: label)
        var sources: [any DispatchSourceSignal] = []
        for sig in signals {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { handler(sig) }
            await withCheckedContinuation { (registered: CheckedContinuation<Void, Never>) in
                source.setRegistrationHandler { registered.resume() }
                source.resume()
            }
            sources.append(source)
        }
        return SignalSources(queue: queue, sources: sources)
    }

    /// Returns once every handler already queued or running has finished.
    func drain() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            queue.async { done.resume() }
        }
    }

    /// Stops delivering. The signals stay caught by libdispatch's handler: later ones are dropped,
    /// not turned into their default action.
    func cancel() {
        for source in sources { source.cancel() }
    }
}
