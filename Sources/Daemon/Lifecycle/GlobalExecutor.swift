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
/// Jobs enqueued with a delay or deadline (`Task.sleep`) would still go to libdispatch, so those
/// hooks are taken over too: the job waits as an NIO scheduled task (a timer only while it waits).
public enum GlobalExecutor {
    /// Installs the hooks. Call once, on the main thread, before any task runs on the global
    /// executor (first thing in an async `main` isolated to the main actor). Returns false if the
    /// runtime does not offer the hooks; tasks then stay on libdispatch.
    @discardableResult
    public static func install() -> Bool {
        guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
            return false
        }
        return installDelayHooks()
    }

    private typealias DelayOriginal = @convention(thin) (UInt64, UnownedJob) -> Void
    private typealias DelayHook = @convention(thin) (UInt64, UnownedJob, DelayOriginal) -> Void
    private typealias DeadlineOriginal = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob) -> Void
    private typealias DeadlineHook = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob, DeadlineOriginal) -> Void

    private static func installDelayHooks() -> Bool {
        guard let handle = dlopen(nil, RTLD_NOW),
              let delaySlot = dlsym(handle, "swift_task_enqueueGlobalWithDelay_hook"),
              let deadlineSlot = dlsym(handle, "swift_task_enqueueGlobalWithDeadline_hook")
        else { return false }
        // Only the main thread runs this, before any delayed job exists: plain stores suffice.
        let delay: DelayHook = { nanoseconds, job, _ in
            GlobalExecutor.enqueue(job, afterNanoseconds: Int64(clamping: nanoseconds))
        }
        let deadline: DeadlineHook = { seconds, nanoseconds, _, _, clock, job, _ in
            var nowSeconds: Int64 = 0
            var nowNanoseconds: Int64 = 0
            swiftGetTime(&nowSeconds, &nowNanoseconds, clock)
            let (wait, overflow) = (seconds &- nowSeconds).multipliedReportingOverflow(by: 1_000_000_000)
            GlobalExecutor.enqueue(job, afterNanoseconds: overflow ? .max : wait &+ (nanoseconds - nowNanoseconds))
        }
        withUnsafeTemporaryAllocation(of: DelayHook.self, capacity: 1) { box in
            box.baseAddress!.initialize(to: delay)
            box.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) {
                delaySlot.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee = $0.pointee
            }
        }
        withUnsafeTemporaryAllocation(of: DeadlineHook.self, capacity: 1) { box in
            box.baseAddress!.initialize(to: deadline)
            box.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) {
                deadlineSlot.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee = $0.pointee
            }
        }
        return true
    }

    /// Waits on an event loop timer, then hands the job to the global executor (NIO's hook).
    private static func enqueue(_ job: UnownedJob, afterNanoseconds nanoseconds: Int64) {
        let box = JobBox(job)
        if nanoseconds <= 0 {
            swiftEnqueueGlobal(box.job)
            return
        }
        MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(nanoseconds)) {
            swiftEnqueueGlobal(box.job)
        }
    }
}

/// An `UnownedJob` crossing to the event loop that will enqueue it; the runtime keeps the job
/// alive until it runs.
private struct JobBox: @unchecked Sendable {
    let job: UnownedJob
    init(_ job: UnownedJob) { self.job = job }
}

@_silgen_name("swift_task_enqueueGlobal")
private func swiftEnqueueGlobal(_ job: UnownedJob)

@_silgen_name("swift_get_time")
private func swiftGetTime(_ seconds: UnsafeMutablePointer<Int64>, _ nanoseconds: UnsafeMutablePointer<Int64>, _ clock: Int32)
