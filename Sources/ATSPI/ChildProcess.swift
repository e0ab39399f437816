import CLinux
import Glibc

/// Runs a program with an exact argument vector and environment (no shell) and waits for it to
/// exit, on a thread of its own so no task thread blocks.
enum ChildProcess {
    enum Outcome: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        /// Still running when the timeout passed; it was killed.
        case timedOut
        case failedToStart(Int32)
    }

    /// Starts `argv[0]` (an absolute path) with `argv` and `environment`, stdin/stdout/stderr on
    /// /dev/null, and returns how it ended; kills it when `timeoutMs` passes first.
    static func run(_ argv: [String], environment: [String], timeoutMs: Int32) async -> Outcome {
        guard let program = argv.first, program.hasPrefix("/") else { return .failedToStart(ENOENT) }
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Int32(0)...2 {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A process group of its own, so a timeout kills what it started too; default signal
        // handling and an empty signal mask, whatever the daemon set for itself.
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let status = withCStrings(argv) { args in
            withCStrings(environment) { env in
                posix_spawn(&pid, program, &actions, &attributes, args, env)
            }
        }
        guard status == 0 else { return .failedToStart(status) }
        return await withCheckedContinuation { continuation in
            let job = WaitJob(pid: pid, timeoutMs: timeoutMs, continuation: continuation)
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { raw in
                let job = Unmanaged<WaitJob>.fromOpaque(raw!).takeRetainedValue()
                job.run()
                return nil
            }, Unmanaged.passRetained(job).toOpaque())
            if started == 0 {
                pthread_detach(thread)
            } else {
                kill(-pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                continuation.resume(returning: .failedToStart(started))
            }
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// The wait, on its own thread: `poll` on a pidfd with the timeout, then `waitpid`.
    private final class WaitJob: @unchecked Sendable {
        let pid: pid_t
        let timeoutMs: Int32
        let continuation: CheckedContinuation<Outcome, Never>

        init(pid: pid_t, timeoutMs: Int32, continuation: CheckedContinuation<Outcome, Never>) {
            self.pid = pid
            self.timeoutMs = timeoutMs
            self.continuation = continuation
        }

        func run() {
            var timedOut = false
            let pidfd = deskgate_pidfd_open(pid)
            if pidfd >= 0 {
                var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                var ready: Int32
                repeat { ready = poll(&entry, 1, timeoutMs) } while ready < 0 && errno == EINTR
                close(pidfd)
                if ready == 0 {
                    timedOut = true
                    kill(-pid, SIGKILL)
                }
            }
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
            if timedOut {
                continuation.resume(returning: .timedOut)
            } else if result < 0 {
                continuation.resume(returning: .exited(-1))
            } else if status & 0x7F == 0 {
                continuation.resume(returning: .exited((status >> 8) & 0xFF))
            } else {
                continuation.resume(returning: .signalled(status & 0x7F))
            }
        }
    }
}
