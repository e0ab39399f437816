@testable import ATSPI
import Broker
@testable import Daemon
import JSONRPC
import Testing

/// deskgate doctor's rules, from facts (the desktop side is tested against real apps).
@Suite("Doctor: why a tree is empty or thin")
struct DoctorTests {
    static let secure = HardeningFacts(noNewPrivileges: true, seccompFilter: true, memoryDenyWriteExecute: false, underSystemd: true)

    static func app(_ name: String, toolkit: String, nodes: Int, web: Int = 0, webWithContent: Int = 0) -> AppDiagnosis {
        AppDiagnosis(app: AppTarget(id: ":1.\(nodes)", name: name, pid: 100, exe: "/usr/bin/\(name)", startTime: 1),
                     toolkit: toolkit, nodes: nodes, contentNodes: max(0, nodes - 2), responding: true, webDocuments: web,
                     webDocumentsWithContent: webWithContent)
    }

    static func findings(_ diagnosis: AccessibilityDiagnosis?, busError: String? = nil, helper: Bool = true,
                         hardening: HardeningFacts = secure) -> [Finding] {
        Doctor.findings(accessibility: diagnosis, busError: busError, helperRegistered: helper, policy: nil, hardening: hardening)
    }

    @Test("Accessibility off is an error with the command that turns it on; no bus is an error")
    func accessibilityOff() {
        let off = Self.findings(AccessibilityDiagnosis(isEnabled: false, screenReaderEnabled: false, enabledByDaemon: false,
                                                       apps: [], hiddenProcesses: []))
        let finding = try? #require(off.first { $0.check == "accessibility_enabled" })
        #expect(finding?.status == .error)
        #expect(finding?.advice?.contains("toolkit-accessibility") == true)
        let noBus = Self.findings(nil, busError: "no AT_SPI_BUS_ADDRESS")
        #expect(noBus.first?.check == "accessibility_bus" && noBus.first?.status == .error)
    }

    @Test("A one-node Chromium gets the switch; Qt the environment variable; others a restart")
    func thinTrees() {
        let diagnosis = AccessibilityDiagnosis(isEnabled: true, screenReaderEnabled: false, enabledByDaemon: true, apps: [
            Self.app("Chromium", toolkit: "Chromium", nodes: 4),
            Self.app("qtapp", toolkit: "Qt", nodes: 3),
            Self.app("gedit", toolkit: "gtk", nodes: 1),
            Self.app("Firefox", toolkit: "Gecko", nodes: 300, web: 2, webWithContent: 0),
            Self.app("fine", toolkit: "gtk", nodes: 80),
        ], hiddenProcesses: [
            HiddenProcess(pid: 42, exe: "/usr/bin/kate", name: "kate", kind: "qt5", qtAccessibilityOff: true, startTime: 1),
        ])
        let findings = Self.findings(diagnosis)
        let trees = findings.filter { $0.check == "app_tree" }
        func about(_ name: String) -> Finding? { trees.first { $0.message.hasPrefix(name + " ") || $0.message.hasPrefix(name + ":") } }
        #expect(about("Chromium")?.advice?.contains("--force-renderer-accessibility") == true)
        #expect(about("qtapp")?.advice?.contains("QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1") == true)
        #expect(about("gedit")?.advice?.contains("restart") == true)
        #expect(about("Firefox")?.status == .warning)
        #expect(about("fine")?.status == .ok)
        let hidden = try? #require(findings.first { $0.check == "hidden_app" })
        #expect(hidden?.pid == 42)
        #expect(hidden?.advice?.contains("QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1") == true)
        #expect(findings.contains { $0.check == "accessibility_enabled" && $0.status == .info })
    }

    @Test("No prompt helper is a warning; missing hardening under systemd is a warning, outside systemd info")
    func helperAndHardening() {
        let on = AccessibilityDiagnosis(isEnabled: true, screenReaderEnabled: false, enabledByDaemon: false, apps: [], hiddenProcesses: [])
        #expect(Self.findings(on, helper: false).first { $0.check == "prompt_helper" }?.status == .warning)
        let weak = HardeningFacts(noNewPrivileges: false, seccompFilter: false, memoryDenyWriteExecute: false, underSystemd: true)
        #expect(Self.findings(on, hardening: weak).first { $0.check == "hardening" }?.status == .warning)
        let bare = HardeningFacts(noNewPrivileges: false, seccompFilter: false, memoryDenyWriteExecute: false, underSystemd: false)
        #expect(Self.findings(on, hardening: bare).first { $0.check == "hardening" }?.status == .info)
    }
}
