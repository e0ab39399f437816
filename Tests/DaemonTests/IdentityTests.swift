#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Daemon
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

/// Runs a command to completion and returns (status, stdout+stderr).
@discardableResult
func run(_ executable: String, _ arguments: [String], input: String? = nil, environment: [String: String]? = nil, timeout: Double = 30) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    var data = Data()
    let reader = output.fileHandleForReading
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { process.terminate(); process.waitUntilExit() }
    data.append(reader.readDataToEndOfFile())
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("Peer identity from the kernel", .serialized)
struct IdentityTests {
    @Test("whoami returns this test process's own pid and executable, via SO_PEERPIDFD and via pidfd_open",
          arguments: [false, true])
    func whoami(forcePidfdOpen: Bool) async throws {
        let daemon = try DaemonProcess(arguments: forcePidfdOpen ? ["--force-pidfd-open"] : [])
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        let who = try await client.call("session.whoami")
        #expect(who["pid"]?.intValue == Int64(getpid()))
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        #expect(who["exe"]?.stringValue == exe)
        #expect(who["uid"]?.intValue == Int64(geteuid()))
        #expect(who["pidfd"]?.stringValue == (forcePidfdOpen ? "pidfd_open" : "so_peerpidfd"))
        // The label is advisory and never replaces the verified fields.
        _ = try await client.call("session.hello", ["client": "I am /usr/bin/trusted"])
        let after = try await client.call("session.whoami")
        #expect(after["exe"]?.stringValue == exe)
        #expect(after["label"] == "I am /usr/bin/trusted")
    }

    @Test("an interpreter client's script path is recorded (advisory)")
    func script() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let dir = TempDirectory("script")
        defer { dir.remove() }
        let scriptPath = dir.file("agent.py")
        try """
        import socket, sys
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"session.whoami"}\\n')
        print(s.makefile().readline(), end="")
        """.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let (status, output) = try run("/usr/bin/python3", [scriptPath, daemon.socketPath])
        #expect(status == 0, "\(output)")
        let reply = try JSONParser.parse(output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(reply["result"]?["script"]?.stringValue == scriptPath)
        #expect(reply["result"]?["exe"]?.stringValue?.contains("python3") == true)
    }

    @Test("a client of another uid is refused by the uid check itself (socket loosened to 0666)")
    func foreignUID() throws {
        let dir = TempDirectory("foreign")
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let daemon = try DaemonProcess(socketPath: dir.file("open.sock"))
        defer { daemon.stop() }
        // Loosen the socket so the kernel lets `nobody` connect; only the daemon's check remains.
        #expect(chmod(daemon.socketPath, 0o666) == 0)
        // The client reads what the daemon says on connect, then tries a request anyway.
        let probe = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
        print(s.makefile().readline(), end="")
        try:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"session.whoami"}\\n'); print("after:" + repr(s.recv(4096)))
        except OSError as e:
            print("after:closed", e)
        """
        let (status, output) = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                             "/usr/bin/python3", "-c", probe, daemon.socketPath])
        #expect(status == 0, "\(output)")
        #expect(output.contains("connection refused"), "\(output)")
        #expect(output.contains("foreign_uid"))
        #expect(!output.contains("\"result\""))
        #expect(daemon.log.contains("refused connection"))
        // With the default modes, the kernel already refuses other users.
        chmod(daemon.socketPath, 0o600)
        let (_, denied) = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                        "/usr/bin/socat", "-t1", "-", "UNIX-CONNECT:\(daemon.socketPath)"], input: "")
        #expect(denied.contains("Permission denied"), "\(denied)")
    }

    @Test("the unit field names the .service cgroup a client runs in")
    func unit() throws {
        let cgroupRoot = "/sys/fs/cgroup/unified"
        let root = FileManager.default.fileExists(atPath: cgroupRoot + "/cgroup.procs") ? cgroupRoot : "/sys/fs/cgroup"
        let unitName = "deskgate-test-\(getpid()).service"
        let cgroup = root + "/" + unitName
        try #require(mkdir(cgroup, 0o755) == 0 || errno == EEXIST, "cannot create cgroup \(cgroup) (needs a writable cgroup v2 hierarchy)")
        defer { rmdir(cgroup) }
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let (status, output) = try run("/bin/sh", ["-c", "echo $$ > \(cgroup)/cgroup.procs && exec /usr/bin/socat -t2 - UNIX-CONNECT:\(daemon.socketPath)"],
                                       input: #"{"jsonrpc":"2.0","id":1,"method":"session.whoami"}"# + "\n")
        #expect(status == 0, "\(output)")
        let reply = try JSONParser.parse(output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(reply["result"]?["unit"]?.stringValue == unitName)
        #expect(reply["result"]?["exe"]?.stringValue == "/usr/bin/socat")
    }

    @Test("cgroup paths map to the deepest service or scope")
    func cgroupParsing() {
        #expect(ProcessInspection.unit(fromCgroupText: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/deskgate.service\n") == "deskgate.service")
        #expect(ProcessInspection.unit(fromCgroupText: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal-1234.scope\n") == "app-org.gnome.Terminal-1234.scope")
        #expect(ProcessInspection.unit(fromCgroupText: "0::/\n") == nil)
        #expect(ProcessInspection.unit(fromCgroupText: "1:name=systemd:/system.slice/cron.service\n0::/\n") == "cron.service")
    }

    @Test("a pidfd stops vouching for a pid once that process has exited")
    func pidfdPinning() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        let pid = process.processIdentifier
        let pidfd = deskgate_pidfd_open(pid)
        #expect(pidfd >= 0)
        defer { close(pidfd) }
        #expect(ProcessInspection.pidfdRefers(pidfd, to: pid))
        #expect(!ProcessInspection.pidfdRefers(pidfd, to: pid + 1))
        // SIGKILL: SIGTERM may be ignored when the test runs under a harness that ignores it.
        kill(pid, SIGKILL)
        process.waitUntilExit()
        #expect(!ProcessInspection.pidfdRefers(pidfd, to: pid))
        #expect(!ProcessInspection.isAlive(pidfd: pidfd))
    }
}
