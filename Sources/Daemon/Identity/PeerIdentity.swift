#if canImport(Glibc)
import Glibc
#endif
public import Broker
import CLinux
public import JSONRPC

/// Who is on the other end of a connection, as the kernel says: never anything the client says.
///
/// The pid is pinned by a pidfd taken at accept (`SO_PEERPIDFD`, or `pidfd_open` on the
/// `SO_PEERCRED` pid), and everything read from `/proc/PID` is trusted only after the pidfd
/// confirms the same process is still alive, so a recycled pid cannot lend its identity.
public struct PeerIdentity: Sendable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// Resolved executable path (`/proc/PID/exe`); " (deleted)" suffix kept if the kernel reports it.
    /// Empty when it could not be read (a non-dumpable process of the same uid, another user
    /// namespace): the peer is unidentified and the broker denies it every gated request.
    public var exe: String
    /// Device and inode of the executable at accept time, to detect exec-after-connect.
    public var exeFileID: FileID?
    /// The systemd unit (service or scope) from the process's cgroup, if any. Advisory for scopes.
    public var unit: String?
    /// For interpreters (python, perl, node, sh…): the script from the command line. Advisory.
    public var script: String?
    /// How the pidfd was obtained: `so_peerpidfd` (race-free) or `pidfd_open` (pid looked up after connect).
    public var pidfdSource: PidfdSource
    /// Cgroup and start time at accept, confirmed by the pidfd like the rest: what the broker
    /// decides "may this client have started the helper" on. nil when unreadable.
    public var origin: ProcessOrigin?

    /// Whether the executable could be read; an unidentified peer is denied every gated request.
    public var isIdentified: Bool { !exe.isEmpty }

    public enum PidfdSource: String, Sendable { case soPeerPidfd = "so_peerpidfd", pidfdOpen = "pidfd_open" }

    public struct FileID: Sendable, Hashable { public var device: UInt64; public var inode: UInt64 }

    public var json: JSONValue {
        [
            "uid": .int(Int64(uid)), "pid": .int(Int64(pid)), "exe": .string(exe),
            "unit": JSONValue(unit), "script": JSONValue(script),
        ]
    }
}

/// Identity failures; a connection that cannot be identified is refused.
public enum IdentityError: Error, CustomStringConvertible, Sendable {
    case credentialsUnavailable(String)
    case foreignUID(peer: UInt32, daemon: UInt32)
    case processGone(Int32)

    public var description: String {
        switch self {
        case .credentialsUnavailable(let detail): "cannot read peer credentials: \(detail)"
        case .foreignUID(let peer, let daemon): "peer uid \(peer) is not the daemon's uid \(daemon)"
        case .processGone(let pid): "peer process \(pid) exited before it could be identified"
        }
    }
}

/// Reads identity facts about processes from the kernel.
public enum ProcessInspection {
    /// Interpreters whose first non-option argument is recorded as the script.
    static let interpreterPrefixes = ["python", "perl", "node", "ruby", "php", "lua", "bash", "sh", "dash", "zsh", "ksh", "fish", "tclsh", "wish", "osascript", "deno", "bun"]

    /// Resolves the identity of `pid` whose credentials came from the socket, verifying the pidfd.
    public static func identify(uid: UInt32, gid: UInt32, pid: Int32, pidfd: Int32, source: PeerIdentity.PidfdSource) throws(IdentityError) -> PeerIdentity {
        // An unreadable exe is no identity at all: "" marks the peer unidentified (never a
        // placeholder name a policy glob or a remembered grant could match).
        let exe = readLink("/proc/\(pid)/exe") ?? ""
        let fileID = fileID(path: "/proc/\(pid)/exe")
        let cgroupText = readSmallFile("/proc/\(pid)/cgroup")
        let unit = cgroupText.flatMap(unit(fromCgroupText:))
        let startTime = readSmallBytes("/proc/\(pid)/stat", limit: 4096).flatMap(ProcessOrigin.startTime(fromStat:))
        let origin = cgroupText.flatMap(ProcessOrigin.cgroup(fromCgroupText:)).flatMap { cgroup in
            startTime.map { ProcessOrigin(cgroup: cgroup, startTime: $0) }
        }
        let script = exe.isEmpty ? nil : script(pid: pid, exe: exe)
        // Only now trust what was read: the pidfd must still name a live process with this pid.
        guard pidfdRefers(pidfd, to: pid) else { throw .processGone(pid) }
        return PeerIdentity(uid: uid, gid: gid, pid: pid, exe: exe, exeFileID: fileID, unit: unit, script: script, pidfdSource: source,
                            origin: origin)
    }

    /// True while `pidfd` refers to a live process whose pid is `pid`.
    public static func pidfdRefers(_ pidfd: Int32, to pid: Int32) -> Bool {
        guard pidfd >= 0, deskgate_pidfd_alive(pidfd) == 0 else { return false }
        // /proc/self/fdinfo/N of a pidfd names the pid it refers to ("Pid:\t123").
        guard let info = readSmallFile("/proc/self/fdinfo/\(pidfd)") else { return false }
        for line in info.split(separator: "\n") where line.hasPrefix("Pid:") {
            return Int32(line.dropFirst(4).trimmingCharacters(in: " \t")) == pid
        }
        return false
    }

    public static func isAlive(pidfd: Int32) -> Bool { pidfd >= 0 && deskgate_pidfd_alive(pidfd) == 0 }

    /// The deepest `.service` or `.scope` in the process's cgroup path (unified hierarchy first,
    /// then the named systemd v1 hierarchy).
    public static func unit(fromCgroupFile path: String) -> String? {
        guard let text = readSmallFile(path) else { return nil }
        return unit(fromCgroupText: text)
    }

    public static func unit(fromCgroupText text: String) -> String? {
        var unified: String?
        var named: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty { unified = String(parts[2]) }
            if parts[1] == "name=systemd" { named = String(parts[2]) }
        }
        for path in [unified, named].compactMap({ $0 }) {
            let components = path.split(separator: "/")
            if let unit = components.last(where: { $0.hasSuffix(".service") || $0.hasSuffix(".scope") }) {
                return String(unit)
            }
        }
        return nil
    }

    static func script(pid: Int32, exe: String) -> String? {
        let base = exe.split(separator: "/").last.map(String.init) ?? exe
        guard interpreterPrefixes.contains(where: { base == $0 || base.hasPrefix($0) && base.dropFirst($0.count).allSatisfy({ $0.isNumber || $0 == "." }) }) else {
            return nil
        }
        guard let raw = readSmallBytes("/proc/\(pid)/cmdline") else { return nil }
        let args = raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var index = 1
        while index < args.count {
            let arg = args[index]
            if arg == "-c" || arg == "-e" || arg == "-m" { return args.indices.contains(index + 1) ? "\(arg) \(args[index + 1].prefix(200))" : nil }
            if arg.hasPrefix("-") { index += 1; continue }
            if arg.isEmpty { return nil }
            if arg.hasPrefix("/") { return arg }
            if let cwd = readLink("/proc/\(pid)/cwd") { return cwd + "/" + arg }
            return arg
        }
        return nil
    }

    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func fileID(path: String) -> PeerIdentity.FileID? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return .init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// The parent pid of `pid` from /proc, or nil.
    public static func parentPID(of pid: Int32) -> Int32? {
        guard let text = readSmallFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 1 else { return nil }
        return Int32(fields[1])
    }

    /// Whether `pid` is `ancestor` or one of its descendants.
    public static func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool {
        var current = pid
        for _ in 0..<256 {
            if current == ancestor { return true }
            guard current > 1, let parent = parentPID(of: current) else { return false }
            current = parent
        }
        return false
    }

    static func readSmallFile(_ path: String) -> String? {
        readSmallBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func readSmallBytes(_ path: String, limit: Int = 65536) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while result.count < limit {
            let n = read(fd, &buffer, buffer.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let first = s.first, set.contains(first) { s = s.dropFirst() }
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return String(s)
    }
}
