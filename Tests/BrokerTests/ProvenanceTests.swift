import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// "May process B have been started by process A": the pure rule, its inputs from /proc, and the
/// two places the broker applies it (which helper may be asked, which apps are hard-denied).
@Suite("Provenance: the approver cannot be the asker")
struct ProvenanceTests {
    static let slice = TestOrigins.slice

    static func origin(_ cgroup: String, _ start: UInt64) -> ProcessOrigin { ProcessOrigin(cgroup: cgroup, startTime: start) }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var child: ProcessOrigin?
        var parent: ProcessOrigin?
        var descends = false
        var expected: Provenance?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "sibling cgroups, child younger", child: origin(slice + "/b.scope", 20), parent: origin(slice + "/a.scope", 10), expected: nil),
        Case(name: "sibling cgroups, child older", child: origin(slice + "/b.scope", 5), parent: origin(slice + "/a.scope", 10), expected: nil),
        Case(name: "same cgroup, child younger", child: origin(slice + "/a.scope", 11), parent: origin(slice + "/a.scope", 10), expected: .sameCgroupLater),
        Case(name: "same cgroup, same clock tick (may: fail closed)", child: origin(slice + "/a.scope", 10), parent: origin(slice + "/a.scope", 10), expected: .sameCgroupLater),
        Case(name: "same cgroup, child older", child: origin(slice + "/a.scope", 9), parent: origin(slice + "/a.scope", 10), expected: nil),
        Case(name: "child cgroup below, child younger", child: origin(slice + "/a.scope/approver", 20), parent: origin(slice + "/a.scope", 10), expected: .cgroupBelow),
        Case(name: "child cgroup below, even older", child: origin(slice + "/a.scope/x/y", 5), parent: origin(slice + "/a.scope", 10), expected: .cgroupBelow),
        Case(name: "parent's cgroup below the child's: not related", child: origin(slice, 20), parent: origin(slice + "/a.scope", 10), expected: nil),
        Case(name: "a name prefix is not a cgroup below", child: origin(slice + "/a.scope2", 20), parent: origin(slice + "/a.scope", 10), expected: nil),
        Case(name: "everything is below the root cgroup", child: origin("/x", 20), parent: origin("/", 30), expected: .cgroupBelow),
        Case(name: "root and root, child younger", child: origin("/", 20), parent: origin("/", 10), expected: .sameCgroupLater),
        Case(name: "descends by parent pids, whatever the cgroups say", child: origin(slice + "/b.scope", 5), parent: origin(slice + "/a.scope", 10), descends: true, expected: .descendant),
        Case(name: "child's origin unknown", child: nil, parent: origin(slice + "/a.scope", 10), expected: .unknown),
        Case(name: "parent's origin unknown", child: origin(slice + "/b.scope", 20), parent: nil, expected: .unknown),
    ]

    @Test("the rule", arguments: cases)
    func rule(_ row: Case) {
        let processes = FakeProcesses(row.descends ? [200: 100] : [:])
        #expect(Provenance.mayHaveStarted((200, row.child), by: (100, row.parent), inspector: processes) == row.expected)
    }

    @Test("cgroup lines: unified first, the named systemd hierarchy on legacy systems, nothing else")
    func cgroupParsing() {
        #expect(ProcessOrigin.cgroup(fromCgroupText: "0::/user.slice/user-1000.slice/session-2.scope\n") == "/user.slice/user-1000.slice/session-2.scope")
        // Hybrid: both present, the unified line wins (what this machine shows: 0::/).
        #expect(ProcessOrigin.cgroup(fromCgroupText: "9:name=systemd:/system.slice/x.service\n4:memory:/m\n0::/\n") == "/")
        #expect(ProcessOrigin.cgroup(fromCgroupText: "1:name=systemd:/user.slice/a.scope\n2:cpu:/\n") == "/user.slice/a.scope")
        #expect(ProcessOrigin.cgroup(fromCgroupText: "4:memory:/m\n") == nil)
        #expect(ProcessOrigin.cgroup(fromCgroupText: "") == nil)
    }

    @Test("start time is field 22, counted after a command name with spaces and parentheses")
    func statParsing() {
        let fields = (3...52).map { $0 == 22 ? "123456" : ($0 == 3 ? "S" : "7") }.joined(separator: " ")
        #expect(ProcessOrigin.startTime(fromStat: Array("4242 (evil) 9 (x) \(fields)\n".utf8)) == 123_456)
        #expect(ProcessOrigin.startTime(fromStat: Array("4242 (short) S 1 2".utf8)) == nil)
        #expect(ProcessOrigin.startTime(fromStat: Array("garbage".utf8)) == nil)
    }

    @Test("read from /proc: this process, and a child that started after it in the same cgroup")
    func procfs() throws {
        let inspector = ProcfsInspector()
        let mine = try #require(inspector.origin(of: getpid()))
        let cgroupFile = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        #expect(mine.cgroup == ProcessOrigin.cgroup(fromCgroupText: cgroupFile))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let child = try #require(inspector.origin(of: process.processIdentifier))
        #expect(child.cgroup == mine.cgroup)
        #expect(child.startTime >= mine.startTime)
        #expect(Provenance.mayHaveStarted((process.processIdentifier, child), by: (getpid(), mine), inspector: inspector) == .descendant)
        #expect(inspector.origin(of: 999_999_999) == nil)
    }

    // MARK: Which helper may be asked

    @Test("a helper in the client's cgroup that started after it is not asked; one that started before is")
    func helperInClientsCgroup() async throws {
        let broker = makeBroker(Sandbox())
        let later = FakeHelper(origin: Self.origin(TestOrigins.client.cgroup, TestOrigins.client.startTime + 1), behavior: .answer("allow_once"))
        try broker.registerHelper(later)
        let blocked = await broker.decide(request("text.set"))
        #expect(blocked.reason == .noHelper)
        #expect(blocked.message.contains("may have been started by the requesting client"))
        #expect(blocked.message.contains("runs in the client's cgroup and started after it"))
        #expect(broker.check(request("text.set")).reason == .noHelper)
        #expect(later.callCount == 0)
        broker.connectionClosed(later.identity.connectionID)

        let earlier = FakeHelper(connectionID: 9001, origin: Self.origin(TestOrigins.client.cgroup, TestOrigins.client.startTime - 1),
                                 behavior: .answer("allow_once"))
        try broker.registerHelper(earlier)
        #expect(await broker.decide(request("text.set")).effect == .allow)
        #expect(earlier.callCount == 1)
    }

    @Test("a helper in a cgroup below the client's is not asked, even one that started earlier")
    func helperBelowClient() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(origin: Self.origin(TestOrigins.client.cgroup + "/approver", 1), behavior: .answer("allow_once"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set"))
        #expect(decision.reason == .noHelper)
        #expect(decision.message.contains("runs in a cgroup below the client's"))
        #expect(helper.callCount == 0)
        // A client elsewhere is served by the same helper.
        let other = client(pid: 5000, connection: 2, origin: Self.origin(Self.slice + "/other.scope", 5000))
        #expect(await broker.decide(request("text.set", client: other)).effect == .allow)
        #expect(helper.callCount == 1)
    }

    @Test("a helper in a sibling cgroup is asked, whenever it started")
    func helperInSibling() async throws {
        for start: UInt64 in [1, TestOrigins.client.startTime, TestOrigins.client.startTime + 500] {
            let broker = makeBroker(Sandbox())
            let helper = FakeHelper(origin: Self.origin(TestOrigins.helper.cgroup, start), behavior: .answer("allow_once"))
            try broker.registerHelper(helper)
            #expect(await broker.decide(request("text.set")).effect == .allow, "helper start \(start)")
            #expect(helper.callCount == 1)
        }
    }

    @Test("a client whose origin could not be read gets no prompt (fail closed)")
    func unknownClientOrigin() async throws {
        let broker = makeBroker(Sandbox())
        let helper = FakeHelper(behavior: .answer("allow_once"))
        try broker.registerHelper(helper)
        let decision = await broker.decide(request("text.set", client: client(origin: nil)))
        #expect(decision.reason == .noHelper)
        #expect(decision.message.contains("could not be read"))
        #expect(helper.callCount == 0)
    }

    @Test("a helper whose origin could not be read cannot register")
    func helperWithoutOrigin() {
        let broker = makeBroker(Sandbox())
        #expect(throws: RPCError.self) { try broker.registerHelper(FakeHelper(origin: nil, behavior: .answer("allow_once"))) }
        #expect(!broker.helperRegistered)
    }

    // MARK: Which apps are the helper's

    @Test("apps the helper may have started are hard-denied under allow-all; others are not", arguments: [
        ("its own pid", Int32(900), nil as ProcessOrigin?, [Int32: Int32](), true),
        ("its child by parent pid", 950, nil, [950: 900], true),
        ("detached (setsid) but in its cgroup, started after it", 951, origin(TestOrigins.helper.cgroup, TestOrigins.helper.startTime + 10), [:], true),
        ("in a cgroup below the helper's", 952, origin(TestOrigins.helper.cgroup + "/dialog.scope", 5), [:], true),
        ("origin unreadable (fail closed)", 953, nil, [:], true),
        ("in the helper's cgroup but older than it", 954, origin(TestOrigins.helper.cgroup, TestOrigins.helper.startTime - 1), [:], false),
        ("in a sibling scope, started later", 955, origin(slice + "/app-mousepad.scope", 9999), [:], false),
    ])
    func helperApps(_ name: String, _ pid: Int32, _ origin: ProcessOrigin?, _ parents: [Int32: Int32], _ denied: Bool) async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"*\"]\n")
        let processes = FakeProcesses(parents, unreadable: pid == 953 ? [953] : [])
        if let origin { processes.setOrigin(pid, origin) }
        let broker = makeBroker(sandbox, processes: processes)
        let target = TargetInfo(appName: "zenity", appExe: "/usr/bin/zenity", appPid: pid)
        // Without a registered helper nothing is the helper's.
        #expect(await broker.decide(request("element.activate", app: "zenity", appExe: "/usr/bin/zenity", appPid: pid)).effect == .allow)
        try broker.registerHelper(FakeHelper(pid: 900, behavior: .answer("deny")))
        let decision = await broker.decide(request("element.activate", app: "zenity", appExe: "/usr/bin/zenity", appPid: pid,
                                                   role: "push button", name: "Allow"))
        #expect((decision.reason == .hardDeny) == denied, "\(name): \(decision.message)")
        #expect(broker.mayList(client: client(), app: target) == !denied, "\(name)")
        if denied { #expect(decision.message.contains("prompt helper"), "\(decision.message)") }
    }
}
