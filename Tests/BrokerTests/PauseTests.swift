import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Synchronization
import Testing

@Suite("The stop button: pause, resume, halt")
struct PauseTests {
    static let allowAll = "[[rule]]\nid = \"all\"\neffect = \"allow\"\nactions = [\"*\"]\n"

    @Test("a pause denies observe, read, act and write with reason paused, over allow rules and grants; admin stays")
    func pauseDeniesEveryClass() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.allowAll)
        let broker = makeBroker(sandbox)
        for method in ["tree.snapshot", "text.read", "element.activate", "field.fill", "audit.query"] {
            #expect(await broker.decide(request(method)).effect == .allow, "\(method) before the pause")
        }
        broker.pause(by: client(pid: 77, exe: "/usr/bin/deskgate"), reason: "something looks wrong")
        for method in ["tree.snapshot", "text.read", "element.activate", "field.fill"] {
            let decision = await broker.decide(request(method))
            #expect(decision.effect == .deny, "\(method)")
            #expect(decision.reason == .paused, "\(method)")
            #expect(decision.rpcError?.data?["reason"] == "paused")
            #expect(decision.message.contains("/usr/bin/deskgate"))
            #expect(decision.message.contains("something looks wrong"))
            #expect(broker.check(request(method)).reason == .paused)
        }
        // The audit can be read during an incident.
        #expect(await broker.decide(request("audit.query")).effect == .allow)
        let status = broker.status["pause"]
        #expect(status?["paused"] == true)
        #expect(status?["by"]?["pid"] == 77)
        #expect(status?["reason"] == "something looks wrong")
    }

    @Test("a pending prompt is cancelled by a pause and ends as paused; the helper is told")
    func pauseCancelsPendingPrompt() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .silent)
        try broker.registerHelper(helper)
        let pending = Task { await broker.decide(request("field.fill", name: "Amount")) }
        await helper.waitForPrompts(1)
        broker.pause(by: client(pid: 77), reason: nil)
        let decision = await pending.value
        #expect(decision.effect == .deny)
        #expect(decision.reason == .paused)
        await helper.waitForCancel()
        #expect(helper.cancelled.count == 1)
    }

    @Test("resume is matched only by a rule naming broker.resume: not by *, not by a class; without one a person is asked")
    func resumeIsControl() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.allowAll)
        var broker = makeBroker(sandbox)
        broker.pause(by: client(), reason: nil)
        // allow * does not lift a pause: the person is asked, and here says no.
        var helper = FakeHelper(behavior: .answer("deny"))
        try broker.registerHelper(helper)
        let asked = await broker.decide(request("broker.resume", app: nil, appExe: nil))
        #expect(asked.effect == .deny)
        #expect(asked.reason == .userDenied)
        #expect(helper.callCount == 1)
        #expect(helper.prompts.first?["kind"] == "resume")
        #expect(helper.prompts.first?["choices"] == ["deny", "resume"])
        #expect(broker.currentPause != nil)

        // The person says resume: allowed, and nothing is remembered for next time.
        helper = FakeHelper(connectionID: 9001, behavior: .answer("resume"))
        broker = makeBroker(sandbox)
        try broker.registerHelper(helper)
        let approved = await broker.decide(request("broker.resume", app: nil, appExe: nil))
        #expect(approved.effect == .allow)
        #expect(approved.choice == "resume")
        #expect(approved.grantID == nil)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)

        // No helper and no rule: denied, never allowed by default.
        let alone = makeBroker(sandbox)
        #expect(await alone.decide(request("broker.resume", app: nil, appExe: nil)).reason == .noHelper)

        // A rule naming it exactly decides without a person.
        sandbox.writeUser(Self.allowAll + "[[rule]]\nid = \"resume\"\neffect = \"allow\"\nactions = [\"broker.resume\"]\nclient_exe = \"/usr/bin/deskgate\"\n")
        let ruled = makeBroker(sandbox)
        let byRule = await ruled.decide(request("broker.resume", client: client(exe: "/usr/bin/deskgate"), app: nil, appExe: nil))
        #expect(byRule.effect == .allow)
        #expect(byRule.ruleID == "resume")
        #expect(await ruled.decide(request("broker.resume", app: nil, appExe: nil)).reason == .noHelper)
    }

    @Test("the class control cannot be named in a rule")
    func controlCannotBeNamed() {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\neffect = \"allow\"\nactions = [\"control\"]\n")
        let broker = makeBroker(sandbox)
        let errors = broker.policyStatus.errors.joined(separator: "\n")
        #expect(errors.contains("broker.resume"), "\(errors)")
    }

    @Test("a pause survives a restart (the pause file) until resumed; a corrupt pause file is a pause")
    func pauseSurvivesRestart() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser(Self.allowAll)
        var events: [String] = []
        let first = makeBroker(sandbox)
        first.pause(by: client(pid: 55), reason: "incident 7")
        let pauseFile = sandbox.root + "/state/deskgate/paused.json"
        #expect(FileManager.default.fileExists(atPath: pauseFile))

        let recorder = EventRecorder()
        let second = makeBroker(sandbox, events: { recorder.add($0) })
        #expect(second.currentPause?.reason == "incident 7")
        #expect(await second.decide(request("tree.snapshot")).reason == .paused)
        events = recorder.kinds
        #expect(events.contains("paused restored"))

        // A reload never lifts it, even when the file went away meanwhile.
        try FileManager.default.removeItem(atPath: pauseFile)
        second.reload()
        #expect(second.currentPause != nil)

        #expect(second.resume(by: client()) != nil)
        #expect(!FileManager.default.fileExists(atPath: pauseFile))
        #expect(await second.decide(request("tree.snapshot")).effect == .allow)
        #expect(makeBroker(sandbox).currentPause == nil)

        try "{not json".write(toFile: pauseFile, atomically: true, encoding: .utf8)
        let third = makeBroker(sandbox)
        #expect(third.currentPause?.reason?.contains("corrupt") == true)
        #expect(await third.decide(request("tree.snapshot")).reason == .paused)
    }

    @Test("a locked session: act and write denied session_locked, no prompt shown, check agrees; when_locked = allow")
    func lockedSession() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\nid = \"look\"\neffect = \"allow\"\nactions = [\"observe\"]\n[[rule]]\nid = \"press\"\neffect = \"allow\"\nactions = [\"act\"]\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_once"))
        try broker.registerHelper(helper)
        broker.setSessionLocked(true)
        #expect(await broker.decide(request("element.activate")).reason == .sessionLocked)
        #expect(await broker.decide(request("tree.snapshot")).effect == .allow)
        // A read that would ask: nobody is asked on a locked screen.
        #expect(await broker.decide(request("text.read")).reason == .sessionLocked)
        #expect(broker.check(request("text.read")).reason == .sessionLocked)
        #expect(helper.callCount == 0)
        broker.setSessionLocked(false)
        #expect(await broker.decide(request("element.activate")).effect == .allow)

        sandbox.writeUser("when_locked = \"allow\"\n[[rule]]\nid = \"press\"\neffect = \"allow\"\nactions = [\"act\"]\n")
        broker.reload()
        broker.setSessionLocked(true)
        #expect(await broker.decide(request("element.activate")).effect == .allow)
        // The admin layer's choice wins over the user's.
        sandbox.writeAdmin("lock.toml", "when_locked = \"pause\"\n")
        broker.reload()
        #expect(await broker.decide(request("element.activate")).reason == .sessionLocked)
    }

    @Test("halt pauses and revokes every remembered grant")
    func haltRevokesGrants() async throws {
        let sandbox = Sandbox()
        let broker = makeBroker(sandbox)
        try broker.registerHelper(FakeHelper(behavior: .answer("allow_always")))
        #expect(await broker.decide(request("field.fill", name: "Amount")).grantID != nil)
        #expect(broker.listGrants()["grants"]?.arrayValue?.count == 1)
        let (pause, revoked, _) = broker.halt(by: client(), reason: "stop")
        #expect(revoked == 1)
        #expect(pause.reason == "stop")
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
        #expect(await broker.decide(request("field.fill", name: "Amount")).reason == .paused)
    }
}

/// Broker events by kind, for assertions.
final class EventRecorder: Sendable {
    private let events = Mutex<[String]>([])
    func add(_ event: BrokerEvent) {
        let kind: String? = switch event {
        case .paused(_, let restored): restored ? "paused restored" : "paused"
        case .resumed: "resumed"
        default: nil
        }
        if let kind { events.withLock { $0.append(kind) } }
    }
    var kinds: [String] { events.withLock { $0 } }
}
