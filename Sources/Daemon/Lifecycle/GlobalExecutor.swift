#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// Runs Swift Concurrency's global executor on NIO's singleton event loops.
///
/// Why: on Linux the default global executor is libdispatch, whose thread pool arms a 1 Hz
/// monitor timer (`_dispatch_workq_monitor_pools`) the first time a worker of a global queue
/// runs, and never disarms it: an idle daemon then wakes once a second for nothing. NIO's loops
/// sleep in epoll until there is work, and requests no longer hop between NIO and dispatch threads.
///
/// `Task.sleep` cannot be moved: in Swift 6.3 it goes straight to libdispatch
/// (`DispatchGlobalTaskExecutor.enqueue(_:at:)`, no hook), so the first sleep would arm the
/// monitor. Daemon code sleeps with ``sleep(for:)`` instead (an NIO timer only while it waits).
public enum GlobalExecutor {
    /// Installs the hook. Call once, on the main thread, before any task runs on the global
    /// executor (first thing in an async `main` isolated to the main actor). Returns false if the
    /// runtime does not offer the hook; tasks then stay on libdispatch.
    @discardableResult
    public static func install() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// `Task.sleep(for:)` on an event-loop timer. Throws `CancellationError` when the task is
    /// cancelled (the timer is cancelled with it).
    @Sendable
    public static func sleep(for duration: Duration) async throws {
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let nanoseconds = overflow ? Int64.max : scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
        try Task.checkCancellation()
        let scheduled = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(max(0, nanoseconds))) {}
        do {
            try await withTaskCancellationHandler {
                try await scheduled.futureResult.get()
            } onCancel: {
                scheduled.cancel()
            }
        } catch {
            throw CancellationError()
        }
    }
}
