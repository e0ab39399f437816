import Broker
import DeskgateAPI
import JSONRPC
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// What a request inside an approved task costs the broker, against the same request allowed by
/// a rule, in one run (`make bench`). The rest of the request path (target resolution, audit,
/// AT-SPI) is the same code for both.
enum TaskBenchmark {
    /// A helper that approves every task at once.
    struct Approver: PromptHelperChannel {
        let identity = ClientIdentity(uid: 1000, pid: 900, exe: "/usr/bin/deskgate-prompt", connectionID: 9000,
                                      origin: ProcessOrigin(cgroup: "/app.slice/deskgate-prompt.service", startTime: 1))
        func prompt(_ params: JSONValue, timeout: Duration) async throws -> JSONValue { ["choice": "approve_task"] }
        func cancel(promptID: String) async {}
    }

    /// Processes in cgroups of their own, as on a systemd desktop: nobody started anybody.
    struct Siblings: ProcessInspector {
        func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool { false }
        func origin(of pid: Int32) -> ProcessOrigin? {
            ProcessOrigin(cgroup: "/app.slice/process-\(pid).scope", startTime: UInt64(pid))
        }
    }

    static func run(decisions: Int = 100_000) async -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deskgate-bench-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let client = ClientIdentity(uid: 1000, pid: 4242, exe: "/usr/bin/agent", connectionID: 1,
                                    origin: ProcessOrigin(cgroup: "/app.slice/agent.scope", startTime: 2))
        let target = TargetInfo(appName: "ledger", appExe: "/usr/bin/ledger", appPid: 3000, role: "push button", name: "Record")
        let request = BrokerRequest(client: client, method: ElementActivate.name, riskClass: .act, target: target, interactive: false)

        func broker(policy: String) -> Broker {
            let path = directory + "/\(UUID().uuidString).toml"
            try? policy.write(toFile: path, atomically: true, encoding: .utf8)
            let config = BrokerConfig(systemPolicyDir: directory + "/admin.d", userPolicyFile: path,
                                      grantsFile: directory + "/state-\(UUID().uuidString)/grants.json",
                                      defaultPromptHelpers: ["/usr/bin/deskgate-prompt"])
            let broker = Broker(config: config, inspector: Siblings(),
                                logger: Logger(label: "deskgate.bench", factory: { _ in SwiftLogNoOpLogHandler() }))
            broker.reload()
            return broker
        }
        let byRule = broker(policy: "[[rule]]\nid = \"record\"\neffect = \"allow\"\nactions = [\"act\"]\napp_exe = \"/usr/bin/ledger\"\nname = \"Record\"\n")
        let inTask = broker(policy: "")
        // Both with a prompt helper registered, as on a desktop (the decision's facts then
        // include whether the helper may have started the app).
        try? byRule.registerHelper(Approver())
        try? inTask.registerHelper(Approver())
        let scope = try? TaskScopeEntry(json: ["actions": ["act"], "app_exe": "/usr/bin/ledger", "name": "Record"], field: "scope.0")
        let task = TaskRequest(title: "bench", scope: scope.map { [$0] } ?? [], expiresIn: .seconds(3600), idle: nil, maxActions: nil)
        do {
            _ = try await inTask.beginTask(task, client: client)
        } catch {
            return "task vs rule: the task was not approved (\(error.message)); nothing measured"
        }

        func time(_ broker: Broker) async -> (p50: Double, p99: Double, allowed: Bool) {
            let clock = ContinuousClock()
            var samples: [Double] = []
            samples.reserveCapacity(decisions)
            var allowed = true
            for _ in 0..<1000 { _ = await broker.decide(request) }
            for _ in 0..<decisions {
                let start = clock.now
                let decision = await broker.decide(request)
                let elapsed = clock.now - start
                allowed = allowed && decision.effect == .allow
                samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
            }
            samples.sort()
            return (samples[samples.count / 2], samples[samples.count * 99 / 100], allowed)
        }
        // Alternate, so that neither side always runs on a warmer machine.
        var rule: [(p50: Double, p99: Double, allowed: Bool)] = []
        var inside: [(p50: Double, p99: Double, allowed: Bool)] = []
        for _ in 0..<3 {
            rule.append(await time(byRule))
            inside.append(await time(inTask))
        }
        let allowed = (rule + inside).allSatisfy(\.allowed)
        func list(_ runs: [(p50: Double, p99: Double, allowed: Bool)]) -> String {
            runs.map { cFormat("%.2f/%.2f", $0.p50, $0.p99) }.joined(separator: ", ")
        }
        return "task vs rule, element.activate decide (p50/p99 µs, 3 alternating runs of \(decisions)): allow rule \(list(rule)); inside a task \(list(inside))"
            + (allowed ? "" : " (NOT ALL ALLOWED: the comparison is void)")
    }
}
