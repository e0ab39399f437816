#if canImport(Glibc)
import Glibc
#endif
import DeskgateClient
import Foundation
import JSONRPC
import TestSupport
import Testing

/// The pause while the session's screen is locked, against a stand-in screensaver on a session
/// bus of the test's own (the shared one would lock every other test's daemon).
@Suite("Locked screen: act and write pause", .serialized, .enabled(if: DesktopEnvironment.enabled, "needs the headless desktop (scripts/headless-desktop.sh)"))
struct LockScreenTests {
    static let allowAll = """
        [[rule]]
        effect = "allow"
        actions = ["observe", "read", "act", "write"]
        app = "deskgate-e2e-*"
        """

    @Test("the owner's ActiveChanged locks (act and write denied session_locked, observe goes on) and unlocks; a client that does not own the name is ignored; GetActive at start; when_locked = allow")
    func lockFollowsTheOwner() async throws {
        let bus = try SessionBus()
        defer { bus.stop() }
        let dir = TempDirectory("deskgate-lock")
        defer { dir.remove() }
        let ownerControl = dir.file("owner"), impostorControl = dir.file("impostor")
        let owner = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/screensaver.py", bus.address,
                                       "--own", "org.gnome.ScreenSaver", ownerControl], logPath: dir.file("owner.log"))
        defer { owner.stop() }
        let impostor = try LoggedProcess(["/usr/bin/python3", DesktopEnvironment.fixturesDirectory + "/screensaver.py", bus.address,
                                          "--impostor", "org.gnome.ScreenSaver", impostorControl], logPath: dir.file("impostor.log"))
        defer { impostor.stop() }
        #expect(owner.line(startingWith: "ready") != nil && impostor.line(startingWith: "ready") != nil)

        let environment = ["DBUS_SESSION_BUS_ADDRESS": bus.address]
        let daemon = try DaemonProcess(environment: environment, userPolicy: Self.allowAll)
        defer { daemon.stop() }
        let app = try await Flows.launch(daemon)
        defer { app.terminate() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        let submit = try await Flows.ref(client, app: app.name, role: "push button", name: "Submit")
        func locked(_ client: DeskgateClient) async -> Bool? {
            try? await client.call("daemon.info")["broker"]?["session_locked"]?.boolValue
        }
        #expect(await Flows.eventually { daemon.log.contains("following the session's screen lock") }, "\(daemon.log.suffix(1500))")
        #expect(await locked(client) == false)
        _ = try await client.call("element.activate", ["ref": .string(submit)])

        // Anyone on the bus can send the signal; only the name's owner is believed.
        try "lock".write(toFile: impostorControl, atomically: true, encoding: .utf8)
        #expect(impostor.line(startingWith: "emitted lock") != nil)
        #expect(await Flows.eventually { daemon.log.contains("does not own the screensaver's name") }, "\(daemon.log.suffix(1500))")
        #expect(await locked(client) == false)
        _ = try await client.call("element.activate", ["ref": .string(submit)])

        // The screensaver itself locks.
        try "lock".write(toFile: ownerControl, atomically: true, encoding: .utf8)
        #expect(owner.line(startingWith: "emitted lock") != nil)
        #expect(await Flows.eventually { await locked(client) == true }, "\(daemon.log.suffix(1500))")
        let clicks = app.output.filter { $0 == "clicked Submit" }.count
        let act = await Flows.failure(client, "element.activate", ["ref": .string(submit)])
        #expect(act?.data?["reason"] == "session_locked", "\(String(describing: act))")
        let write = await Flows.failure(client, "field.fill", ["app": .string(app.name), "field": "Name", "value": "x"])
        #expect(write?.data?["reason"] == "session_locked")
        #expect(try await client.call("tree.snapshot", ["app": .string(app.name)])["nodes"] != nil)
        #expect(app.output.filter { $0 == "clicked Submit" }.count == clicks)

        // A daemon started while locked asks GetActive and starts locked; one whose policy says
        // when_locked = "allow" goes on acting.
        let later = try DaemonProcess(environment: environment, userPolicy: Self.allowAll)
        defer { later.stop() }
        let laterClient = try await later.client()
        defer { laterClient.closeNow() }
        #expect(await Flows.eventually { await locked(laterClient) == true }, "\(later.log.suffix(1500))")
        let allowing = try DaemonProcess(environment: environment, userPolicy: "when_locked = \"allow\"\n" + Self.allowAll)
        defer { allowing.stop() }
        let allowingClient = try await allowing.client()
        defer { allowingClient.closeNow() }
        #expect(await Flows.eventually { await locked(allowingClient) == true })
        let allowedRef = try await Flows.ref(allowingClient, app: app.name, role: "push button", name: "Submit")
        _ = try await allowingClient.call("element.activate", ["ref": .string(allowedRef)])

        // Unlocked: act again.
        try "unlock".write(toFile: ownerControl, atomically: true, encoding: .utf8)
        #expect(await Flows.eventually { await locked(client) == false })
        _ = try await client.call("element.activate", ["ref": .string(submit)])
        let kinds = daemon.auditRecords().compactMap { $0["kind"]?.stringValue }
        #expect(kinds.contains("session_locked") && kinds.contains("session_unlocked"), "\(kinds)")
    }
}
