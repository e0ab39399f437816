import CAtspiConstants
import DBus
import Glibc

/// What `daemon.doctor` learns from the desktop: whether accessibility is on, how much of each
/// app's tree there is, and which graphical programs are not on the accessibility bus at all.
public struct AccessibilityDiagnosis: Sendable {
    /// `org.a11y.Status.IsEnabled` now (nil: no session bus or no answer).
    public var isEnabled: Bool?
    /// `org.a11y.Status.ScreenReaderEnabled` now.
    public var screenReaderEnabled: Bool?
    /// The daemon turned `IsEnabled` on at its start: apps started before then may not be on
    /// the bus (Qt) or may show no content (Chromium) until restarted.
    public var enabledByDaemon: Bool
    public var apps: [AppDiagnosis]
    public var hiddenProcesses: [HiddenProcess]
}

/// One app on the bus, and how much of its tree there is.
public struct AppDiagnosis: Sendable {
    public var app: AppTarget
    public var toolkit: String
    /// Nodes counted, up to ``AccessibilityService/diagnosisNodeLimit``.
    public var nodes: Int
    /// Of those, the nodes inside the app's windows (not the app, not the windows themselves):
    /// Chromium without `--force-renderer-accessibility` shows windows with nothing inside.
    public var contentNodes: Int
    public var responding: Bool
    /// Web documents (`document web`) in the tree, and how many of them have content.
    public var webDocuments: Int
    public var webDocumentsWithContent: Int
}

/// A graphical program of this user that is not on the accessibility bus.
public struct HiddenProcess: Sendable {
    public var pid: Int32
    public var exe: String?
    /// `/proc/PID/comm`.
    public var name: String
    /// `qt5`, `qt6`, `gtk3`, `gtk4`, `chromium`, `electron` or `firefox`: what it links or is.
    public var kind: String
    /// A Qt program started without `QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1` in its environment.
    public var qtAccessibilityOff: Bool
    /// Start time (`/proc/PID/stat`), so the broker's decision on it names this process.
    public var startTime: UInt64?

    public var target: AppTarget { AppTarget(id: "pid:\(pid)", name: name, pid: pid, exe: exe, startTime: startTime) }
}

extension AccessibilityBus {
    /// `org.a11y.Status`: IsEnabled and ScreenReaderEnabled, as the session bus says now.
    func status() async -> (isEnabled: Bool?, screenReaderEnabled: Bool?) {
        guard let session = sessionConnection else { return (nil, nil) }
        func get(_ property: String) async -> Bool? {
            let reply = try? await session.call(destination: "org.a11y.Bus", path: "/org/a11y/bus", interface: Atspi.properties,
                                                member: "Get", args: [.string("org.a11y.Status"), .string(property)],
                                                timeout: .seconds(2))
            return reply?.first?.boolValue
        }
        return (await get("IsEnabled"), await get("ScreenReaderEnabled"))
    }
}

extension AccessibilityService {
    /// How many nodes of each app `diagnose` counts at most: enough to tell a thin tree.
    public static let diagnosisNodeLimit = 400

    /// `daemon.doctor`'s facts. Apps `include` refuses are neither counted nor listed; hidden
    /// processes are listed only when `include` accepts them too.
    public func diagnose(where include: @Sendable (AppTarget) -> Bool) async -> AccessibilityDiagnosis {
        let status = await connection.status()
        let listed = (try? await listApps(where: include)) ?? []
        var apps: [AppDiagnosis] = []
        for info in listed {
            let target = AppTarget(id: info.id, name: info.name, pid: info.pid, exe: info.exe, startTime: nil)
            var diagnosis = AppDiagnosis(app: target, toolkit: info.toolkit, nodes: 0, contentNodes: 0, responding: info.responding,
                                         webDocuments: 0, webDocumentsWithContent: 0)
            if info.responding, let handle = try? await registry.live(info.id) {
                let deadline = Deadline(after: .seconds(2))
                if let tree = try? await fetchTree(handle, root: handle.rootPath, maxDepth: nil, maxNodes: Self.diagnosisNodeLimit,
                                                   pruneHidden: false, deadline: deadline)
                {
                    diagnosis.nodes = tree.nodes.count
                    diagnosis.contentNodes = max(0, tree.nodes.count - 1 - (tree[tree.root]?.children.count ?? 0))
                    for node in tree.nodes where node.role == ATSPI_ROLE_DOCUMENT_WEB.rawValue {
                        diagnosis.webDocuments += 1
                        if !node.children.isEmpty { diagnosis.webDocumentsWithContent += 1 }
                    }
                }
            }
            apps.append(diagnosis)
        }
        let onBus = Set(listed.map(\.pid))
        let hidden = ProcessFacts.graphicalProcesses(session: ProcessFacts.sessionMarker())
            .filter { !onBus.contains($0.pid) && include($0.target) }
        return AccessibilityDiagnosis(isEnabled: status.isEnabled, screenReaderEnabled: status.screenReaderEnabled,
                                      enabledByDaemon: connection.enabledIsEnabled, apps: apps, hiddenProcesses: hidden)
    }
}

extension ProcessFacts {
    /// What ties a process to the daemon's desktop session: the session bus address, else the
    /// display, from the daemon's own environment (nil: neither is known, so no process can be
    /// said to belong to this session).
    static func sessionMarker() -> String? {
        for name in ["DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY"] {
            if let value = getenv(name), value.pointee != 0 { return name + "=" + String(cString: value) }
        }
        return nil
    }

    /// This user's processes in this desktop session (their environment has `session`, see
    /// ``sessionMarker()``) that link a GUI toolkit or are a browser, from `/proc`. Child
    /// processes of a browser (renderers, zygotes) and processes of other users are left out.
    static func graphicalProcesses(session: String?) -> [HiddenProcess] {
        guard let session else { return [] }
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        let uid = getuid()
        let me = getpid()
        var found: [HiddenProcess] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), pid != me else { continue }
            var info = stat()
            guard stat("/proc/\(pid)", &info) == 0, info.st_uid == uid else { continue }
            guard let environ = strings(of: pid, file: "environ"), environ.contains(session),
                  environ.contains(where: { $0.hasPrefix("DISPLAY=") || $0.hasPrefix("WAYLAND_DISPLAY=") })
            else { continue }
            let cmdline = strings(of: pid, file: "cmdline") ?? []
            // Browser helpers (renderers, GPU, zygote) carry --type=; Firefox's content
            // processes carry -contentproc.
            if cmdline.contains(where: { $0.hasPrefix("--type=") || $0 == "-contentproc" }) { continue }
            let exe = executable(of: pid)
            guard let kind = toolkitKind(pid: pid, exe: exe) else { continue }
            let comm = strings(of: pid, file: "comm")?.first?.split(separator: "\n").first.map(String.init) ?? name
            let qtOff = kind.hasPrefix("qt") && !environ.contains("QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1")
            found.append(HiddenProcess(pid: pid, exe: exe, name: comm, kind: kind, qtAccessibilityOff: qtOff,
                                       startTime: startTime(of: pid)))
        }
        return found.sorted { $0.pid < $1.pid }
    }

    /// What a process is, by its executable and the libraries it maps.
    static func toolkitKind(pid: Int32, exe: String?) -> String? {
        if let exe, let browser = BrowserLaunch.kind(executable: exe) { return browser.rawValue }
        if let exe, exe.hasSuffix("/electron") { return "electron" }
        let fd = open("/proc/\(pid)/maps", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 8 << 20 {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        let maps = String(decoding: bytes, as: UTF8.self)
        for (marker, kind) in [("libQt6Gui", "qt6"), ("libQt5Gui", "qt5"), ("libgtk-4", "gtk4"), ("libgtk-3", "gtk3")]
            where maps.contains(marker)
        {
            return kind
        }
        return nil
    }
}
