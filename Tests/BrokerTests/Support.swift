import Broker
import DeskgateAPI
import Foundation
import JSONRPC
import Logging
import Synchronization

/// A temp directory with an admin dir, a user policy file path and a grants path; removed on deinit.
final class Sandbox: Sendable {
    let root: String
    var adminDir: String { root + "/etc/policy.d" }
    var userFile: String { root + "/config/deskgate/policy.toml" }
    var grantsFile: String { root + "/state/deskgate/grants.json" }

    init() {
        root = NSTemporaryDirectory() + "deskgate-broker-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: root + "/etc/policy.d", withIntermediateDirectories: true)
        try! FileManager.default.createDirectory(atPath: root + "/config/deskgate", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func writeUser(_ text: String) { try! text.write(toFile: userFile, atomically: true, encoding: .utf8) }
    func writeAdmin(_ name: String, _ text: String) {
        try! text.write(toFile: adminDir + "/" + name, atomically: true, encoding: .utf8)
    }

    func config(timeout: Duration = .seconds(5), agents: [String] = [TestIDs.helperExe]) -> BrokerConfig {
        BrokerConfig(systemPolicyDir: adminDir, userPolicyFile: userFile, grantsFile: grantsFile,
                     defaultPromptHelpers: agents, promptTimeout: timeout)
    }
}

enum TestIDs {
    static let helperExe = "/usr/bin/deskgate-prompt"
    static let python = "/usr/bin/python3"
}

/// A settable clock.
final class TestClock: Sendable {
    private let current: Mutex<Date>
    init(_ date: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = Mutex(date) }
    var now: Date { current.withLock { $0 } }
    func set(_ date: Date) { current.withLock { $0 = date } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// Where the fakes run, as on a systemd desktop: the helper in its own service, the agent and
/// the apps in scopes of their own, all siblings under app.slice.
enum TestOrigins {
    static let slice = "/user.slice/user-1000.slice/user@1000.service/app.slice"
    static let helper = ProcessOrigin(cgroup: slice + "/deskgate-prompt.service", startTime: 1000)
    static let client = ProcessOrigin(cgroup: slice + "/agent.scope", startTime: 2000)
    static let app = ProcessOrigin(cgroup: slice + "/app-ledger.scope", startTime: 3000)
}

/// Parent links and origins for the fake process tree. Pids without an origin of their own
/// report ``TestOrigins/app``; pids in `unreadable` report none.
final class FakeProcesses: ProcessInspector, Sendable {
    private let parents: Mutex<[Int32: Int32]>
    private let origins: Mutex<[Int32: ProcessOrigin]>
    private let unreadable: Mutex<Set<Int32>>
    init(_ parents: [Int32: Int32] = [:], origins: [Int32: ProcessOrigin] = [:], unreadable: Set<Int32> = []) {
        self.parents = Mutex(parents)
        self.origins = Mutex(origins)
        self.unreadable = Mutex(unreadable)
    }
    func setParent(_ child: Int32, _ parent: Int32) { parents.withLock { $0[child] = parent } }
    func setOrigin(_ pid: Int32, _ origin: ProcessOrigin) { origins.withLock { $0[pid] = origin } }
    func isDescendant(_ pid: Int32, of ancestor: Int32) -> Bool {
        parents.withLock { table in
            var current = pid
            for _ in 0..<64 {
                guard let parent = table[current] else { return false }
                if parent == ancestor { return true }
                current = parent
            }
            return false
        }
    }
    func origin(of pid: Int32) -> ProcessOrigin? {
        if unreadable.withLock({ $0.contains(pid) }) { return nil }
        return origins.withLock { $0[pid] } ?? TestOrigins.app
    }
}

/// A prompt helper whose answers the test scripts.
final class FakeHelper: PromptHelperChannel, Sendable {
    enum Behavior: Sendable {
        case answer(String)
        case raw(JSONValue)
        /// Never answers (until cancelled).
        case silent
        /// Fails as a crashed connection would.
        case crash
        /// Answers each call with the next choice; "silent" entries never answer.
        case script([String])
        /// Waits for `release(choice)`.
        case gated
    }

    struct Crash: Error {}

    let identity: ClientIdentity
    let behavior: Behavior
    private let calls = Mutex<[JSONValue]>([])
    private let cancels = Mutex<[String]>([])
    private let gate = Mutex<(waiting: [CheckedContinuation<String, Never>], answers: [String])>(([], []))
    private let promptedStream: AsyncStream<JSONValue>
    private let promptedContinuation: AsyncStream<JSONValue>.Continuation

    init(pid: Int32 = 900, exe: String = TestIDs.helperExe, connectionID: UInt64 = 9000,
         origin: ProcessOrigin? = TestOrigins.helper, behavior: Behavior) {
        identity = ClientIdentity(uid: 1000, pid: pid, exe: exe, connectionID: connectionID, origin: origin)
        self.behavior = behavior
        (promptedStream, promptedContinuation) = AsyncStream.makeStream()
    }

    var callCount: Int { calls.withLock { $0.count } }
    var prompts: [JSONValue] { calls.withLock { $0 } }
    var cancelled: [String] { cancels.withLock { $0 } }

    /// Waits until the helper has received `count` prompts in total.
    func waitForPrompts(_ count: Int) async {
        if callCount >= count { return }
        for await _ in promptedStream where callCount >= count { return }
    }

    func waitForCancel() async {
        while cancelled.isEmpty { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// Answers the oldest waiting gated prompt, or the next one to arrive.
    func release(_ choice: String) {
        let continuation: CheckedContinuation<String, Never>? = gate.withLock { gate in
            if gate.waiting.isEmpty {
                gate.answers.append(choice)
                return nil
            }
            return gate.waiting.removeFirst()
        }
        continuation?.resume(returning: choice)
    }

    func prompt(_ params: JSONValue, timeout: Duration) async throws -> JSONValue {
        let index = calls.withLock { calls -> Int in
            calls.append(params)
            return calls.count - 1
        }
        promptedContinuation.yield(params)
        switch behavior {
        case .answer(let choice): return ["choice": .string(choice)]
        case .raw(let value): return value
        case .silent:
            try await Task.sleep(for: .seconds(3600))
            throw CancellationError()
        case .crash: throw Crash()
        case .script(let choices):
            let choice = index < choices.count ? choices[index] : "deny"
            if choice == "silent" {
                try await Task.sleep(for: .seconds(3600))
                throw CancellationError()
            }
            return ["choice": .string(choice)]
        case .gated:
            let choice = await withCheckedContinuation { continuation in
                let ready: String? = gate.withLock { gate in
                    if gate.answers.isEmpty {
                        gate.waiting.append(continuation)
                        return nil
                    }
                    return gate.answers.removeFirst()
                }
                if let ready { continuation.resume(returning: ready) }
            }
            return ["choice": .string(choice)]
        }
    }

    func cancel(promptID: String) async { cancels.withLock { $0.append(promptID) } }
}

func makeBroker(_ sandbox: Sandbox, clock: TestClock = TestClock(), processes: FakeProcesses = FakeProcesses(),
                timeout: Duration = .seconds(5), agents: [String] = [TestIDs.helperExe],
                events: @escaping @Sendable (BrokerEvent) -> Void = { _ in }) -> Broker {
    let broker = Broker(config: sandbox.config(timeout: timeout, agents: agents), inspector: processes,
                        now: { clock.now }, events: events, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    broker.reload()
    return broker
}

func client(pid: Int32 = 4242, exe: String = TestIDs.python, script: String? = nil, connection: UInt64 = 1,
            origin: ProcessOrigin? = TestOrigins.client) -> ClientIdentity {
    ClientIdentity(uid: 1000, pid: pid, exe: exe, script: script, label: "agent", connectionID: connection, origin: origin)
}

func request(_ method: String, client: ClientIdentity = client(), app: String? = "ledger", appExe: String? = "/usr/bin/ledger",
             appPid: Int32? = 3000, role: String? = nil, name: String? = nil, origin: String? = nil,
             interactive: Bool = true) -> BrokerRequest {
    let riskClass = DeskgateAPI.descriptor(named: method)!.riskClass!
    let target = app == nil && appExe == nil && role == nil && name == nil
        ? nil : TargetInfo(appName: app, appExe: appExe, appPid: appPid, role: role, name: name, origin: origin)
    return BrokerRequest(client: client, method: method, riskClass: riskClass, target: target, interactive: interactive,
                         preview: "preview")
}

extension Decision {
    var reasonText: String? { reason?.rawValue }
}

/// Values gathered from concurrent tasks.
final class Collector<T: Sendable>: Sendable {
    private let storage = Mutex<[T]>([])
    func append(_ value: T) { storage.withLock { $0.append(value) } }
    var items: [T] { storage.withLock { $0 } }
}

extension Broker {
    /// Whether `apps.list` would show `app` to `client`: a standing decision, never a prompt.
    func mayList(client: ClientIdentity, app: TargetInfo) -> Bool {
        standing([.observeApp(client: client, method: "apps.list", target: app)])[0].effect == .allow
    }
}
