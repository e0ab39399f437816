import ATSPI
import Broker
import CLinux
import DeskgateAPI
import Glibc
import JSONRPC

/// One thing `deskgate doctor` says: what it checked, how it stands, and what to do.
struct Finding: Sendable, Hashable {
    enum Status: String, Sendable, Comparable {
        case ok, info, warning, error

        private var rank: Int { [Status.ok, .info, .warning, .error].firstIndex(of: self)! }
        static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
    }

    /// A stable name of the check (`accessibility`, `app_tree`, `qt_accessibility`, ...).
    var check: String
    var status: Status
    var message: String
    var advice: String?
    /// The app or process it is about.
    var app: String?
    var pid: Int32?

    var json: JSONValue {
        var object: JSONObject = ["check": .string(check), "status": .string(status.rawValue), "message": .string(message)]
        if let advice { object.append("advice", .string(advice)) }
        if let app { object.append("app", .string(app)) }
        if let pid { object.append("pid", .int(Int64(pid))) }
        return .object(object)
    }
}

/// The daemon's own hardening, as the kernel reports it for this process.
struct HardeningFacts: Sendable, Hashable {
    var noNewPrivileges: Bool
    /// `Seccomp:` of /proc/self/status: 2 means a filter is in force.
    var seccompFilter: Bool
    var memoryDenyWriteExecute: Bool
    /// Started by systemd (`INVOCATION_ID`).
    var underSystemd: Bool

    static func current() -> HardeningFacts {
        var noNewPrivs = false
        var seccomp = false
        if let status = ProcessFactsText.contents("/proc/self/status") {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("NoNewPrivs:") { noNewPrivs = line.hasSuffix("1") }
                if line.hasPrefix("Seccomp:") { seccomp = line.hasSuffix("2") }
            }
        }
        let mdwe = deskgate_prctl_get_mdwe() > 0
        return HardeningFacts(noNewPrivileges: noNewPrivs, seccompFilter: seccomp, memoryDenyWriteExecute: mdwe,
                              underSystemd: getenv("INVOCATION_ID") != nil)
    }
}

enum ProcessFactsText {
    static func contents(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while bytes.count < 1 << 20 {
            let count = Glibc.read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Why a tree is empty or thin, and what to do: the rules, from facts gathered elsewhere
/// (tested without a desktop).
enum Doctor {
    /// Trees with at most this many nodes inside their windows are thin: windows with nothing
    /// inside (Chromium without the switch shows its frames and no more).
    static let thinTree = 2

    static func findings(accessibility: AccessibilityDiagnosis?, busError: String?, helperRegistered: Bool,
                         policy: PolicyStatus?, hardening: HardeningFacts) -> [Finding] {
        var out: [Finding] = []
        // The bus and org.a11y.Status.
        if let busError {
            out.append(Finding(check: "accessibility_bus", status: .error, message: "no accessibility bus: \(busError)",
                               advice: "run deskgated inside the desktop session (it needs DBUS_SESSION_BUS_ADDRESS or AT_SPI_BUS_ADDRESS), and install at-spi2-core"))
        } else if let accessibility {
            out.append(Finding(check: "accessibility_bus", status: .ok, message: "the accessibility bus is connected"))
            switch accessibility.isEnabled {
            case false?:
                out.append(Finding(check: "accessibility_enabled", status: .error, message: "accessibility is off (org.a11y.Status IsEnabled is false)",
                                   advice: "turn it on: gsettings set org.gnome.desktop.interface toolkit-accessibility true, then restart the apps"))
            case nil:
                out.append(Finding(check: "accessibility_enabled", status: .warning, message: "org.a11y.Status could not be read (no session bus?)",
                                   advice: "apps that check IsEnabled (Chromium, Qt) may not expose their trees"))
            case true?:
                out.append(Finding(check: "accessibility_enabled", status: .ok, message: "accessibility is on (org.a11y.Status IsEnabled)"))
                if accessibility.enabledByDaemon {
                    out.append(Finding(check: "accessibility_enabled", status: .info,
                                       message: "deskgated turned accessibility on at its start",
                                       advice: "apps started before then may show no tree or an empty one: restart them"))
                }
            }
            for app in accessibility.apps { out.append(contentsOf: appFindings(app)) }
            for process in accessibility.hiddenProcesses { out.append(hiddenFinding(process)) }
        }
        // The broker.
        if helperRegistered {
            out.append(Finding(check: "prompt_helper", status: .ok, message: "a prompt helper is registered"))
        } else {
            out.append(Finding(check: "prompt_helper", status: .warning, message: "no prompt helper is registered: requests that need a person's approval are denied (no_agent)",
                               advice: "start deskgate-prompt (systemctl --user start deskgate-prompt, or deskgate-prompt --gui)"))
        }
        let files = policy?.files ?? []
        let failed = files.filter { !$0.loaded && $0.error != nil }
        if policy == nil {
            out.append(Finding(check: "policy", status: .error, message: "the broker is not running: every gated request is denied"))
        } else if failed.isEmpty {
            out.append(Finding(check: "policy", status: .ok, message: "policy: \(files.filter(\.loaded).count) file(s) loaded"))
        }
        for file in failed {
            out.append(Finding(check: "policy", status: .error, message: "policy file \(file.path) (\(file.layer.rawValue)) failed: \(file.error ?? "")",
                               advice: "fix it (deskgate policy check \(file.path)); until then its layer denies everything"))
        }
        // The daemon itself.
        if hardening.underSystemd {
            let missing = [hardening.noNewPrivileges ? nil : "NoNewPrivileges", hardening.seccompFilter ? nil : "SystemCallFilter"]
                .compactMap { $0 }
            out.append(missing.isEmpty
                ? Finding(check: "hardening", status: .ok, message: "running under systemd with NoNewPrivileges and a system-call filter"
                    + (hardening.memoryDenyWriteExecute ? " and memory-deny-write-execute" : ""))
                : Finding(check: "hardening", status: .warning, message: "running under systemd without \(missing.joined(separator: ", "))",
                          advice: "use the shipped deskgate.service unit (systemd-analyze --user security deskgate.service)"))
        } else {
            out.append(Finding(check: "hardening", status: .info,
                               message: "not started by systemd: the unit's sandbox (NoNewPrivileges, system-call filter, ...) is not in force"
                                   + (hardening.noNewPrivileges ? "; NoNewPrivileges is set" : ""),
                               advice: "run it as the deskgate.service user unit (make install, systemctl --user enable --now deskgate.socket)"))
        }
        return out
    }

    static func appFindings(_ app: AppDiagnosis) -> [Finding] {
        let name = app.app.name
        let toolkit = app.toolkit.lowercased()
        if !app.responding {
            return [Finding(check: "app_tree", status: .warning, message: "\(name) does not answer accessibility calls",
                            advice: "it may be busy or hung; deskgate stops asking until it answers a ping", app: app.app.id, pid: app.app.pid)]
        }
        if app.contentNodes <= thinTree {
            let advice: String
            if toolkit.contains("chromium") || toolkit.contains("chrome") || toolkit.contains("electron") {
                advice = "start it with --force-renderer-accessibility (Electron apps take the same switch)"
            } else if toolkit.contains("qt") {
                advice = "start it with QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1 in its environment"
            } else {
                advice = "restart it now that accessibility is on; apps started before it was turned on may keep an empty tree"
            }
            return [Finding(check: "app_tree", status: .warning,
                            message: "\(name) shows \(app.contentNodes == 0 ? "nothing" : "only \(app.contentNodes) element\(app.contentNodes == 1 ? "" : "s")") inside its window\(app.nodes - app.contentNodes > 2 ? "s" : "")",
                            advice: advice, app: app.app.id, pid: app.app.pid)]
        }
        if app.webDocuments > 0, app.webDocumentsWithContent == 0 {
            let advice = toolkit.contains("chromium")
                ? "start Chromium with --force-renderer-accessibility so web pages expose their content"
                : "reload the page; if it stays empty, restart the browser with accessibility on (GNOME_ACCESSIBILITY=1 for Firefox)"
            return [Finding(check: "app_tree", status: .warning, message: "\(name) has web pages but none exposes its content",
                            advice: advice, app: app.app.id, pid: app.app.pid)]
        }
        let counted = app.nodes >= AccessibilityService.diagnosisNodeLimit ? "\(app.nodes)+" : "\(app.nodes)"
        return [Finding(check: "app_tree", status: .ok, message: "\(name): \(counted) nodes",
                        app: app.app.id, pid: app.app.pid)]
    }

    static func hiddenFinding(_ process: HiddenProcess) -> Finding {
        let advice: String
        switch process.kind {
        case "qt5", "qt6":
            advice = process.qtAccessibilityOff
                ? "Qt apps register only when accessibility is on as they start: restart it with QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1"
                : "restart it now that accessibility is on"
        case "chromium", "electron":
            advice = "restart it with --force-renderer-accessibility now that accessibility is on"
        case "firefox":
            advice = "restart it with GNOME_ACCESSIBILITY=1 now that accessibility is on"
        default:
            advice = "restart it now that accessibility is on (GTK apps load the accessibility bridge at start)"
        }
        return Finding(check: "hidden_app", status: .warning,
                       message: "\(process.name) (\(process.kind), pid \(process.pid)) is running but not on the accessibility bus",
                       advice: advice, app: nil, pid: process.pid)
    }
}

/// `daemon.doctor`: the findings, with per-app ones only for apps (and hidden programs) the
/// caller may observe, as `apps.list` filters.
enum DoctorHandlers {
    static func register(into table: inout MethodTable, source: any AccessibilitySource, broker: Broker?) {
        let decisions = StandingDecisions(broker: broker)
        table.register(DaemonDoctor.self) { _, context in
            let client = context.client
            var diagnosis: AccessibilityDiagnosis?
            var busError: String?
            do {
                diagnosis = try await source.get().diagnose { app in
                    decisions.mayObserve(client, method: DaemonDoctor.name, app: app)
                }
            } catch {
                busError = (error as? AccessibilityError)?.description ?? "\(error)"
            }
            let findings = Doctor.findings(accessibility: diagnosis, busError: busError,
                                           helperRegistered: broker?.helperRegistered ?? false,
                                           policy: broker?.policyStatus,
                                           hardening: .current())
            let worst = findings.map(\.status).max() ?? .ok
            return ["status": .string(worst.rawValue), "findings": .array(findings.map(\.json))]
        }
    }
}
