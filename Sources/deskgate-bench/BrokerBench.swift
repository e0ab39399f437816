import Broker
import DeskgateAPI
import JSONRPC
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// Decision time with a large policy, for `make bench`.
enum BrokerBenchmark {
    struct Result: Sendable {
        var rules: Int
        var decisions: Int
        var p50Microseconds: Double
        var p99Microseconds: Double
        var maxMicroseconds: Double

        var summary: String {
            cFormat("broker decide: %d rules, %d decisions, p50 %.2f µs, p99 %.2f µs, max %.1f µs",
                   rules, decisions, p50Microseconds, p99Microseconds, maxMicroseconds)
        }
    }

    /// Writes a user policy of `rules` rules (spread over apps, classes, methods, clients,
    /// elements and effects, plus some glob rules) to a temp dir, loads it, and times
    /// `decisions` decisions on requests that hit and miss. Allow, deny and grant paths are all
    /// taken; no prompts.
    static func run(rules: Int = 10_000, decisions: Int = 100_000) async -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deskgate-bench-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let policyPath = directory + "/policy.toml"
        try? policyText(rules: rules).write(toFile: policyPath, atomically: true, encoding: .utf8)

        let config = BrokerConfig(systemPolicyDir: directory + "/admin.d", userPolicyFile: policyPath,
                                  grantsFile: directory + "/state/grants.json", defaultPromptHelpers: [])
        let broker = Broker(config: config, inspector: NoAncestry(), logger: Logger(label: "deskgate.bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        let status = broker.reload()
        precondition(status.ok, "benchmark policy failed to load: \(status.errors)")

        let classes: [(RiskClass, String)] = [(.observe, "tree.snapshot"), (.read, "text.read"), (.act, "element.activate"),
                                              (.write, "text.set"), (.write, "field.fill")]
        let apps = max(rules / 10, 1)
        var requests: [BrokerRequest] = []
        for i in 0..<1000 {
            let (riskClass, method) = classes[i % classes.count]
            let app = "app\(i * 7919 % (apps + 50))"  // some apps have no rules at all
            let target = TargetInfo(appName: app, appExe: "/usr/bin/\(app)", appPid: Int32(1000 + i), role: "text",
                                    name: "field\(i % 13)")
            let client = ClientIdentity(uid: 1000, pid: Int32(50_000 + i % 7), exe: "/usr/bin/client\(i % 5)",
                                        connectionID: UInt64(i % 7))
            requests.append(BrokerRequest(client: client, method: method, riskClass: riskClass, target: target,
                                          interactive: false))
        }
        // Warm up.
        for request in requests { _ = await broker.decide(request) }

        var samples: [Double] = []
        samples.reserveCapacity(decisions)
        let clock = ContinuousClock()
        for i in 0..<decisions {
            let request = requests[i % requests.count]
            let start = clock.now
            _ = await broker.decide(request)
            let elapsed = clock.now - start
            samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
        }
        samples.sort()
        return Result(rules: rules, decisions: decisions, p50Microseconds: samples[samples.count / 2],
                      p99Microseconds: samples[samples.count * 99 / 100], maxMicroseconds: samples.last ?? 0)
    }

    /// One line for `make bench`: 10,000 rules, 100,000 decisions.
    static func report() async -> String { await run().summary }

    /// A policy of `rules` rules for the benchmark.
    static func policyText(rules: Int) -> String {
        let apps = max(rules / 10, 1)
        let effects = ["allow", "allow", "allow", "deny", "ask"]
        let actions = ["\"observe\"", "\"read\"", "\"act\", \"write\"", "\"text.set\"", "\"field.fill\", \"observe\""]
        var text = "default = \"ask\"\n"
        text.reserveCapacity(rules * 160)
        for i in 0..<rules {
            text += "\n[[rule]]\nid = \"r\(i)\"\neffect = \"\(effects[i % effects.count])\"\nactions = [\(actions[i % actions.count])]\n"
            text += "client_exe = \"/usr/bin/client\(i % 5)\"\n"
            if i % 100 == 99 {
                text += "app = \"app\(i % apps)*\"\n"  // a glob: lands in the scanned bucket
            } else if i % 3 == 0 {
                text += "app_exe = \"/usr/bin/app\(i % apps)\"\n"
            } else {
                text += "app = \"app\(i % apps)\"\n"
            }
            if i % 4 == 0 { text += "name = \"field\(i % 13)\"\n" }
        }
        return text
    }

    struct NoAncestry: ProcessInspector {
        func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool { false }
        func origin(of pid: Int32) -> ProcessOrigin? { nil }
    }
}
