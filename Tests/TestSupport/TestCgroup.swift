#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A cgroup made for one test in the machine's cgroup v2 hierarchy, below the test process's own
/// cgroup, so that tests can place processes the way a desktop does (a helper in a unit of its
/// own, an agent in another). Needs root (or a delegated subtree). ``remove()`` kills what is
/// left in it (only processes the test put there) and removes it with its children.
public final class TestCgroup: Sendable {
    /// The path as `/proc/PID/cgroup` shows it (`0::PATH`).
    public let path: String
    /// The directory in the cgroup2 file system.
    public let directory: String

    /// Where cgroup2 is mounted and which cgroup path its root shows, from /proc/self/mountinfo
    /// (on hybrid layouts e.g. `/sys/fs/cgroup/unified`; never assumed).
    public static func mount() throws -> (mountPoint: String, root: String) {
        let info = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        for line in info.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].split(separator: " ").first == "cgroup2" else { continue }
            let fields = halves[0].split(separator: " ")
            guard fields.count >= 5 else { continue }
            return (unescape(String(fields[4])), unescape(String(fields[3])))
        }
        throw TestFailure("no cgroup2 file system in /proc/self/mountinfo")
    }

    /// The cgroup v2 path of a process (`0::` line of /proc/PID/cgroup).
    public static func cgroupPath(of pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") { return String(line.dropFirst(3)) }
        return nil
    }

    /// Makes a fresh cgroup `<own cgroup>/deskgate-<name>-<pid>-<random>`.
    public convenience init(_ name: String) throws {
        guard let own = Self.cgroupPath(of: getpid()) else { throw TestFailure("this process has no cgroup v2 path") }
        let base = own == "/" ? "" : own
        try self.init(path: "\(base)/deskgate-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    private init(path: String) throws {
        let (mountPoint, root) = try Self.mount()
        guard path == root || path.hasPrefix(root == "/" ? "/" : root + "/") else {
            throw TestFailure("cgroup \(path) is outside the cgroup2 mount's root \(root)")
        }
        self.path = path
        directory = mountPoint + (root == "/" ? path : String(path.dropFirst(root.count)))
        guard mkdir(directory, 0o755) == 0 else {
            throw TestFailure("cannot create cgroup \(directory): \(String(cString: strerror(errno))) (needs a writable cgroup v2 hierarchy)")
        }
    }

    /// A cgroup below this one.
    public func child(_ name: String) throws -> TestCgroup { try TestCgroup(path: path + "/" + name) }

    /// Prefix for a command line that runs the command in this cgroup: a shell moves itself in,
    /// then execs the command (same pid), as `systemd-run --scope` does.
    public var wrapper: [String] { ["/bin/sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", directory] }

    /// Pids in this cgroup (not its children).
    public var pids: [Int32] {
        ((try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// Kills the processes left in this cgroup and its children (the test put them there) and
    /// removes the directories, deepest first.
    public func remove() {
        var directories: [String] = []
        if let enumerator = FileManager.default.enumerator(atPath: directory) {
            for case let entry as String in enumerator {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: directory + "/" + entry, isDirectory: &isDirectory), isDirectory.boolValue {
                    directories.append(directory + "/" + entry)
                }
            }
        }
        directories.sort { $0.count > $1.count }
        directories.append(directory)
        for dir in directories {
            for _ in 0..<200 {
                let left = ((try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
                if left.isEmpty { break }
                for pid in left { kill(pid, SIGKILL) }
                usleep(10_000)
            }
            rmdir(dir)
        }
    }

    deinit { if FileManager.default.fileExists(atPath: directory) { remove() } }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    private static func unescape(_ field: String) -> String {
        var result = ""
        let chars = Array(field)
        var index = 0
        while index < chars.count {
            if chars[index] == "\\", index + 3 < chars.count, let code = UInt8(String(chars[(index + 1)...(index + 3)]), radix: 8) {
                result.append(Character(UnicodeScalar(code)))
                index += 4
            } else {
                result.append(chars[index])
                index += 1
            }
        }
        return result
    }
}
