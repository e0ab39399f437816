import Foundation
import Glibc

/// The crash-injection helper executable, built next to the test bundle.
enum CrashWriter {
    static var path: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = (exe as NSString).deletingLastPathComponent
        // The test binary sits in .build/<triple>/debug/<name>.xctest (a file on Linux).
        if dir.hasSuffix(".xctest") { dir = (dir as NSString).deletingLastPathComponent }
        return dir + "/audit-crash-writer"
    }
}

/// A child process with stdout (and stderr) on a pipe. Spawned with posix_spawn: forking a
/// multithreaded Swift process is unsafe.
final class ChildProcess {
    let pid: pid_t
    private let readFD: Int32
    private(set) var buffer: [UInt8] = []

    init(_ executable: String, _ arguments: [String]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(.EIO) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
        }
        pid = child
        readFD = fds[0]
    }

    deinit { close(readFD) }

    /// Reads what is available within `timeoutMs`; false at end of file.
    @discardableResult
    func read(timeoutMs: Int32) -> Bool {
        var pfd = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return true }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { Glibc.read(readFD, $0.baseAddress, $0.count) }
        if n <= 0 { return false }
        buffer += chunk[..<n]
        return true
    }

    var output: String { String(decoding: buffer, as: UTF8.self) }

    /// Reads until the child closes its output, then reaps it; returns the terminating signal.
    func finish() -> Int32? {
        while read(timeoutMs: 1000) {}
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signalled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        return signalled ? status & 0x7f : nil
    }

    struct Result: Sendable {
        let output: String
        let signal: Int32?
    }

    /// Runs to completion (killing it after `readFor` seconds).
    static func run(_ executable: String, _ arguments: [String], readFor seconds: Double) throws -> Result {
        let child = try ChildProcess(executable, arguments)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, child.read(timeoutMs: 100) {}
        if Date() >= deadline { kill(child.pid, SIGKILL) }
        let signal = child.finish()
        return Result(output: child.output, signal: signal)
    }
}
