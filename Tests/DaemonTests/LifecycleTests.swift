#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Daemon
import Foundation
import JSONRPC
import TestSupport
import Testing

/// A datagram socket standing in for systemd's NOTIFY_SOCKET.
final class NotifyListener {
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard deskgate_unix_bind(fd, path) == 0 else { throw TestFailure("bind notify socket: \(errno)") }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Collects datagrams until `predicate` holds for the collected list or the time is up.
    func collect(for seconds: Double, until predicate: ([String]) -> Bool) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, !predicate(messages) {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { messages.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
        }
        return messages
    }

    deinit { close(fd); unlink(path) }
}

@Suite("Socket, lifecycle and systemd integration", .serialized)
struct LifecycleTests {
    @Test("socket 0600 in a 0700 directory")
    func permissions() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        var st = stat()
        #expect(stat(daemon.socketPath, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let dir = (daemon.socketPath as NSString).deletingLastPathComponent
        #expect(stat(dir, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
    }

    @Test("a stale socket file is replaced; a live daemon makes the second one exit with a clear message")
    func staleAndLive() throws {
        let dir = TempDirectory("stale")
        defer { dir.remove() }
        let path = dir.file("deskgate.sock")
        // A socket file nobody listens on, as a crashed daemon leaves behind.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(deskgate_unix_bind(fd, path) == 0)
        close(fd)
        #expect(FileManager.default.fileExists(atPath: path))
        let first = try DaemonProcess(socketPath: path)
        defer { first.stop() }
        let c = try first.raw()
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["result"] == "pong")

        let second = try DaemonProcess(socketPath: path, waitForSocket: false)
        second.process.waitUntilExit()
        #expect(second.process.terminationStatus != 0)
        #expect(second.log.contains("already serving"))
        // The first daemon is untouched.
        c.send(#"{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["id"] == 2)
    }

    @Test("a socket directory owned by another user is refused")
    func foreignDirectory() throws {
        let dir = TempDirectory("foreigndir")
        defer { dir.remove() }
        let sub = dir.file("deskgate")
        mkdir(sub, 0o700)
        chown(sub, 65534, 65534)
        let daemon = try DaemonProcess(socketPath: sub + "/deskgate.sock", waitForSocket: false)
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus != 0)
        #expect(daemon.log.contains("owned by uid 65534"))
    }

    @Test("default socket follows XDG_RUNTIME_DIR and creates a 0700 deskgate directory")
    func defaultPath() throws {
        let runtime = TempDirectory("xdg")
        defer { runtime.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProducts.path("deskgated"))
        process.arguments = ["--state-dir", runtime.file("state")]
        var env = ProcessInfo.processInfo.environment
        env["XDG_RUNTIME_DIR"] = runtime.path
        process.environment = env
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        let expected = runtime.file("deskgate/deskgate.sock")
        var ok = false
        for _ in 0..<500 where !ok {
            ok = (try? RawConnection(path: expected)) != nil
            if !ok { usleep(20_000) }
        }
        #expect(ok)
        var st = stat()
        #expect(stat(runtime.file("deskgate"), &st) == 0 && st.st_mode & 0o777 == 0o700)
        // The CLI finds the same socket from the same environment.
        let (status, output) = try run(BuiltProducts.path("deskgate"), ["ping"], environment: env)
        #expect(status == 0 && output.contains("pong"), "\(output)")
    }

    @Test("socket activation with readiness and watchdog notifications")
    func socketActivation() throws {
        let dir = TempDirectory("activate")
        defer { dir.remove() }
        let notify = try NotifyListener(path: dir.file("notify.sock"))
        let socketPath = dir.file("deskgate.sock")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        process.arguments = ["-l", socketPath, "-E", "NOTIFY_SOCKET", "-E", "WATCHDOG_USEC", "-E", "XDG_RUNTIME_DIR",
                             BuiltProducts.path("deskgated"), "--state-dir", dir.file("state"), "--log-level", "debug"]
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notify.path
        env["WATCHDOG_USEC"] = "400000"
        env["XDG_RUNTIME_DIR"] = dir.path
        process.environment = env
        let log = dir.file("log")
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        // systemd-socket-activate listens first and starts the daemon on the first connection.
        var connection: RawConnection?
        for _ in 0..<250 where connection == nil {
            connection = try? RawConnection(path: socketPath)
            if connection == nil { usleep(20_000) }
        }
        let c = try #require(connection)
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["result"] == "pong")
        let messages = notify.collect(for: 5) { list in
            list.contains { $0.contains("READY=1") } && list.filter { $0.contains("WATCHDOG=1") }.count >= 2
        }
        #expect(messages.contains { $0.contains("READY=1") }, "\(messages)")
        #expect(messages.filter { $0.contains("WATCHDOG=1") }.count >= 2, "\(messages)")
        let daemonLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(daemonLog.contains("passed by systemd"), "\(daemonLog)")
        // Stopping sends STOPPING=1 and leaves systemd's socket file alone.
        let pids = try String(contentsOfFile: "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children", encoding: .utf8)
        let daemonPID = Int32(pids.split(separator: " ").first.map(String.init) ?? "") ?? process.processIdentifier
        kill(daemonPID, SIGTERM)
        let stopping = notify.collect(for: 5) { $0.contains { $0.contains("STOPPING=1") } }
        #expect(stopping.contains { $0.contains("STOPPING=1") }, "\(stopping)")
    }

    /// Starts a daemon whose start-up waits in the audit open: the test holds the audit
    /// directory's lock exclusively (as `deskgate audit reset` does), and the daemon waits up to
    /// 2 s for it. Returns once the daemon has logged that it is starting.
    static func daemonHeldInStartup(_ dir: TempDirectory, arguments: [String] = []) throws -> (DaemonProcess, Int32) {
        let state = dir.file("state")
        #expect(mkdir(state, 0o700) == 0 && mkdir(state + "/audit", 0o700) == 0)
        let lock = open(state + "/audit", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
        let daemon = try DaemonProcess(arguments: ["--state-dir", state] + arguments, waitForSocket: false)
        try waitForLog(daemon, "state=starting")
        return (daemon, lock)
    }

    static func waitForLog(_ daemon: DaemonProcess, _ text: String, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !daemon.log.contains(text) {
            guard Date() < deadline, daemon.process.isRunning else {
                throw TestFailure("no \"\(text)\" in the log (running: \(daemon.process.isRunning)): \(daemon.log)")
            }
            usleep(5_000)
        }
    }

    /// Waits for the process to exit on its own (SIGKILL after `timeout`, which the caller's
    /// expectations on the exit then catch).
    static func waitForExit(_ daemon: DaemonProcess, timeout: Double = 20) {
        let deadline = Date().addingTimeInterval(timeout)
        while daemon.process.isRunning && Date() < deadline { usleep(10_000) }
        if daemon.process.isRunning { kill(daemon.pid, SIGKILL) }
        daemon.process.waitUntilExit()
    }

    @Test("a SIGTERM during start-up is a stop request: start-up finishes, the daemon never serves, exits 0 and removes its socket")
    func stopDuringStartup() throws {
        let dir = TempDirectory("startstop")
        defer { dir.remove() }
        let (daemon, lock) = try Self.daemonHeldInStartup(dir)
        kill(daemon.pid, SIGTERM)
        close(lock)
        Self.waitForExit(daemon)
        #expect(daemon.process.terminationReason == .exit, "killed by signal \(daemon.process.terminationStatus): \(daemon.log)")
        #expect(daemon.process.terminationStatus == 0)
        #expect(daemon.log.contains("stopped"))
        #expect(!daemon.log.contains("state=running"), "\(daemon.log)")
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
    }

    @Test("a SIGHUP during start-up is a reload request, applied once the daemon runs")
    func reloadDuringStartup() throws {
        let dir = TempDirectory("startreload")
        defer { dir.remove() }
        let (daemon, lock) = try Self.daemonHeldInStartup(dir)
        defer { daemon.stop() }
        kill(daemon.pid, SIGHUP)
        close(lock)
        try daemon.waitForSocket()
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["result"] == "pong")
        try Self.waitForLog(daemon, "policies reloaded")
    }

    @Test("while stopping: SIGHUP reloads nothing, a second SIGTERM cuts the grace short; the daemon still exits 0")
    func signalsWhileStopping() throws {
        let daemon = try DaemonProcess(arguments: ["--enable-test-methods"])
        let c = try daemon.raw()
        // 4 s: within the 5 s grace, so only a cut grace leaves it unanswered.
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"debug.sleep","params":{"ms":4000}}"# + "\n")
        c.send(#"{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["id"] == 2)  // the sleep was read before the ping: it is in flight
        kill(daemon.pid, SIGTERM)
        try Self.waitForLog(daemon, "stopping")
        kill(daemon.pid, SIGHUP)
        kill(daemon.pid, SIGTERM)
        let line = c.readLine()
        #expect(line == nil, "the in-flight request was answered: \(String(decoding: line ?? [], as: UTF8.self))")
        Self.waitForExit(daemon)
        #expect(daemon.process.terminationReason == .exit && daemon.process.terminationStatus == 0, "\(daemon.log)")
        #expect(daemon.log.contains("stopped"))
        #expect(!daemon.log.contains("policies reloaded"), "\(daemon.log)")
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
    }

    @Test("LISTEN_PID for another process is ignored (the daemon binds its own socket)")
    func listenPIDMismatch() throws {
        let daemon = try DaemonProcess(environment: ["LISTEN_PID": "1", "LISTEN_FDS": "1"])
        defer { daemon.stop() }
        let c = try daemon.raw()
        c.send(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n")
        #expect(try c.readJSON()["result"] == "pong")
    }

    @Test("works under the hardening it claims: no-new-privs and memory-deny-write-execute")
    func hardening() throws {
        let daemon = try DaemonProcess(arguments: ["--mdwe"], wrapper: ["/usr/bin/setpriv", "--no-new-privs"])
        defer { daemon.stop() }
        let status = try String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)
        #expect(status.contains("NoNewPrivs:\t1"))
        #expect(daemon.log.contains("memory-deny-write-execute enabled"))
        // Exercise the runtime a little under MDWE: many requests, a big reply, discovery.
        let c = try daemon.raw()
        for i in 0..<200 { c.send(#"{"jsonrpc":"2.0","id":\#(i),"method":"rpc.discover"}"# + "\n") }
        for _ in 0..<200 { #expect(try c.readJSON()["result"]?["methods"] != nil) }
    }

    @Test("the systemd units pass systemd-analyze verify")
    func unitsVerify() throws {
        let dir = TempDirectory("units")
        defer { dir.remove() }
        let root = BuiltProducts.packageRoot
        let service = try String(contentsOfFile: root + "/systemd/deskgate.service", encoding: .utf8)
            .replacingOccurrences(of: "@BINDIR@", with: BuiltProducts.directory)
        try service.write(toFile: dir.file("deskgate.service"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: root + "/systemd/deskgate.socket", toPath: dir.file("deskgate.socket"))
        var env = ProcessInfo.processInfo.environment
        env["XDG_RUNTIME_DIR"] = dir.path
        let (status, output) = try run("/usr/bin/systemd-analyze", ["verify", "--user", dir.file("deskgate.socket"), dir.file("deskgate.service")], environment: env)
        #expect(status == 0, "\(output)")
        #expect(!output.contains("Unknown key"), "\(output)")
        #expect(service.contains("Type=notify") && service.contains("MemoryDenyWriteExecute=yes") && service.contains("RestrictAddressFamilies=AF_UNIX"))
    }
}

/// The lifecycle state machine on its own: every event in every phase, and the action it returns.
@Suite("Lifecycle state machine")
struct LifecycleStateMachineTests {
    /// A machine driven to `phase` the way the daemon gets there.
    static func machine(in phase: LifecycleStateMachine.Phase) -> LifecycleStateMachine {
        var m = LifecycleStateMachine()
        if phase == .initial { return m }
        _ = m.start()
        if phase == .starting { return m }
        _ = m.startupFinished()
        if phase == .running { return m }
        _ = m.stopRequested()
        if phase == .stopping { return m }
        m.shutdownFinished()
        return m
    }

    @Test("start, serve, stop, stopped: the plain path")
    func plainPath() {
        var m = LifecycleStateMachine()
        #expect(m.phase == .initial)
        #expect(m.start() == .start)
        #expect(m.phase == .starting)
        #expect(m.startupFinished() == .serve(reloadFirst: false))
        #expect(m.phase == .running)
        #expect(m.stopRequested() == .beginShutdown)
        #expect(m.phase == .stopping)
        #expect(!m.graceCut)
        m.shutdownFinished()
        #expect(m.phase == .stopped)
    }

    @Test("a service runs once: start is refused in every phase but the first")
    func startOnce() {
        for phase: LifecycleStateMachine.Phase in [.starting, .running, .stopping, .stopped] {
            var m = Self.machine(in: phase)
            #expect(m.start() == .refuse(phase))
            #expect(m.phase == phase)
        }
    }

    @Test("a stop requested while starting is remembered: start-up then stops without serving")
    func stopWhileStarting() {
        var m = Self.machine(in: .starting)
        #expect(m.stopRequested() == .stopOnceStarted)
        #expect(m.phase == .starting)
        #expect(m.stopRequested() == .ignore)  // asked twice: still one stop
        #expect(m.startupFinished() == .stop)
        #expect(m.phase == .stopping)
        #expect(m.stopRequested() == .cutGrace)
    }

    @Test("a reload requested while starting is applied before serving; not when a stop is pending")
    func reloadWhileStarting() {
        var m = Self.machine(in: .starting)
        #expect(m.reloadRequested() == .reloadOnceStarted)
        #expect(m.reloadRequested() == .reloadOnceStarted)
        #expect(m.startupFinished() == .serve(reloadFirst: true))

        var stopping = Self.machine(in: .starting)
        #expect(stopping.reloadRequested() == .reloadOnceStarted)
        #expect(stopping.stopRequested() == .stopOnceStarted)
        #expect(stopping.reloadRequested() == .ignore)
        #expect(stopping.startupFinished() == .stop)
    }

    @Test("running: SIGHUP reloads, every time")
    func reloadWhileRunning() {
        var m = Self.machine(in: .running)
        #expect(m.reloadRequested() == .reload)
        #expect(m.reloadRequested() == .reload)
        #expect(m.phase == .running)
    }

    @Test("stopping: a second stop cuts the grace once, later ones and reloads are ignored")
    func whileStopping() {
        var m = Self.machine(in: .stopping)
        #expect(m.reloadRequested() == .ignore)
        #expect(m.stopRequested() == .cutGrace)
        #expect(m.graceCut)
        #expect(m.stopRequested() == .ignore)
        #expect(m.reloadRequested() == .ignore)
        #expect(m.phase == .stopping)
        m.shutdownFinished()
        #expect(m.phase == .stopped)
    }

    @Test("stopped: requests change nothing")
    func whileStopped() {
        var m = Self.machine(in: .stopped)
        #expect(m.stopRequested() == .ignore)
        #expect(m.reloadRequested() == .ignore)
        #expect(m.phase == .stopped)
    }

    @Test("a stop before start: nothing to stop, and nothing starts afterwards")
    func stopBeforeStart() {
        var m = LifecycleStateMachine()
        #expect(m.reloadRequested() == .ignore)
        #expect(m.phase == .initial)
        #expect(m.stopRequested() == .ignore)
        #expect(m.phase == .stopped)
        #expect(m.start() == .refuse(.stopped))
    }

    @Test("a failed start-up goes through stopping to stopped; requests meanwhile change nothing")
    func failedStartup() {
        var m = Self.machine(in: .starting)
        #expect(m.stopRequested() == .stopOnceStarted)
        m.startupFailed()
        #expect(m.phase == .stopping)
        #expect(m.reloadRequested() == .ignore)
        m.shutdownFinished()
        #expect(m.phase == .stopped)
    }
}
