import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Testing

/// A client whose executable the daemon could not read is unidentified: denied everything.
@Suite("Unidentified clients")
struct UnidentifiedTests {
    @Test("an unidentified client is denied everything, 'unidentified', without a prompt, whatever the rules")
    func unidentifiedClient() async throws {
        let sandbox = Sandbox()
        sandbox.writeUser("[[rule]]\nid = \"all\"\neffect = \"allow\"\nactions = [\"*\"]\nclient_exe = \"*\"\n[[rule]]\nid = \"asks\"\neffect = \"ask\"\nactions = [\"write\"]\n")
        let broker = makeBroker(sandbox)
        let helper = FakeHelper(behavior: .answer("allow_always"))
        try broker.registerHelper(helper)
        let nobody = client(exe: "")
        for method in ["tree.snapshot", "text.read", "element.activate", "text.set", "grants.list", "apps.list"] {
            let decision = await broker.decide(request(method, client: nobody))
            #expect(decision.effect == .deny, "\(method)")
            #expect(decision.reason == .unidentified, "\(method)")
            #expect(decision.rpcError?.data?["reason"] == "unidentified")
            #expect(decision.rpcError?.code == .denied)
            #expect(decision.message.contains("could not verify which program"), "\(decision.message)")
            #expect(broker.check(request(method, client: nobody)).reason == .unidentified)
        }
        #expect(!broker.mayList(client: nobody, app: TargetInfo(appName: "ledger", appExe: "/usr/bin/ledger", appPid: 3000)))
        #expect(helper.callCount == 0)
        #expect(broker.listGrants()["grants"]?.arrayValue?.isEmpty == true)
        // The same request from an identified client is allowed.
        #expect(await broker.decide(request("tree.snapshot")).effect == .allow)
    }

    @Test("an unidentified process cannot register as helper: reason unidentified")
    func unidentifiedHelper() {
        let broker = makeBroker(Sandbox(), agents: [TestIDs.helperExe, ""])
        do {
            try broker.registerHelper(FakeHelper(exe: "", behavior: .answer("allow_always")))
            Issue.record("registered")
        } catch {
            #expect(error.data?["reason"] == "unidentified")
            #expect(error.message.contains("unidentified"))
        }
        #expect(!broker.helperRegistered)
    }
}
