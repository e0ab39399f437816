#if canImport(Glibc)
import Glibc
#endif

/// Keeps stdout for MCP frames only.
///
/// The MCP stdio transport owns the process's real stdout; anything else that writes to fd 1 (a
/// stray `print`, a library's diagnostics) would corrupt the frame stream. `claim()` duplicates
/// the real stdout to a private descriptor for the transport and points fd 1 at stderr, so such
/// writes land in the log instead.
enum StdoutGuard {
    /// Returns the descriptor of the real stdout; afterwards fd 1 refers to stderr.
    static func claim() throws(StdioError) -> Int32 {
        let framesFD = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
        guard framesFD >= 0 else { throw StdioError(operation: "dup(stdout)", errno: errno) }
        guard dup2(STDERR_FILENO, STDOUT_FILENO) >= 0 else {
            throw StdioError(operation: "dup2(stderr, stdout)", errno: errno)
        }
        // A host that closes its end must not kill us with SIGPIPE; writes then fail with EPIPE.
        signal(SIGPIPE, SIG_IGN)
        return framesFD
    }
}

/// A failed system call on the stdio descriptors.
struct StdioError: Error, CustomStringConvertible {
    var operation: String
    var errno: Int32
    var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}
