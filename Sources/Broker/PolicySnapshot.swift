#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Every policy layer as loaded at one moment: immutable, built by ``PolicyLoader`` and replaced
/// whole on each reload, so a decision always reads one consistent policy.
struct PolicySnapshot: Sendable {
    /// One layer's files, what failed to load, and its rules indexed.
    struct Layer: Sendable {
        var files: [PolicyFile] = []
        var failures: [(path: String, line: Int?, message: String)] = []
        var index = RuleIndex([])
        var rules: [PolicyRule] { index.rules }
    }

    var admin = Layer()
    var user = Layer()
    var sensitive = SensitiveMatcher()
    /// Executables that may register as the prompt helper (with their real paths).
    var promptHelpers: [String]
    var defaultEffect: RuleEffect = .ask
    /// `when_locked`, the admin layer's if it sets it, else the user's, else pause.
    var whenLocked: WhenLocked = .pause
    /// The longest task an admin allows (the smallest `max_task_s`), else 8 hours.
    var maxTaskSeconds = 28_800
    var defaultFromAdmin = false
    var audit = AuditSettings()
    var status = PolicyStatus(files: [])
    /// False until the first load: everything is denied before it.
    var loaded = false

    /// Before anything was loaded.
    static func unloaded(promptHelpers: [String]) -> PolicySnapshot { PolicySnapshot(promptHelpers: promptHelpers) }
}

/// Reads the policy files and the grants file (blocking file I/O).
enum PolicyLoader {
    struct Loaded: Sendable {
        var policy: PolicySnapshot
        /// The persistent grants, or why the file could not be read (then it denies everything).
        var grants: Result<[RememberedGrant], GrantFile.Corrupt>
        var events: [BrokerEvent]
    }

    static func load(_ config: BrokerConfig) -> Loaded {
        var statuses: [PolicyStatus.FileStatus] = []
        var events: [BrokerEvent] = []

        func load(_ path: String, layer: PolicyLayer, into target: inout PolicySnapshot.Layer) {
            do {
                guard let bytes = try FileIO.read(path) else {
                    statuses.append(.init(path: path, layer: layer, loaded: false, rules: 0))
                    return
                }
                let file = try PolicyParser.parse(bytes, path: path, layer: layer)
                target.files.append(file)
                statuses.append(.init(path: path, layer: layer, loaded: true, sha256: file.sha256, rules: file.rules.count))
                events.append(.policyLoaded(path: path, layer: layer, sha256: file.sha256, rules: file.rules.count))
            } catch let error as TOMLError {
                target.failures.append((path, error.line, error.message))
                statuses.append(.init(path: path, layer: layer, loaded: false, rules: 0, error: error.description))
                events.append(.policyError(path: path, layer: layer, line: error.line, message: error.message))
            } catch {
                target.failures.append((path, nil, "\(error)"))
                statuses.append(.init(path: path, layer: layer, loaded: false, rules: 0, error: "\(error)"))
                events.append(.policyError(path: path, layer: layer, line: nil, message: "\(error)"))
            }
        }

        var admin = PolicySnapshot.Layer()
        do {
            for path in try FileIO.tomlFiles(in: config.systemPolicyDir) ?? [] { load(path, layer: .admin, into: &admin) }
        } catch {
            admin.failures.append((config.systemPolicyDir, nil, error.description))
            statuses.append(.init(path: config.systemPolicyDir, layer: .admin, loaded: false, rules: 0, error: error.description))
            events.append(.policyError(path: config.systemPolicyDir, layer: .admin, line: nil, message: error.description))
        }
        admin.index = RuleIndex(admin.files.flatMap(\.rules))
        var user = PolicySnapshot.Layer()
        load(config.userPolicyFile, layer: .user, into: &user)
        user.index = RuleIndex(user.files.flatMap(\.rules))

        var grants: Result<[RememberedGrant], GrantFile.Corrupt>
        do {
            var list: [RememberedGrant] = []
            if let bytes = try FileIO.read(config.grantsFile) { list = try GrantFile.decode(bytes) }
            grants = .success(list)
            statuses.append(.init(path: config.grantsFile, layer: .grants, loaded: true, rules: list.count))
            events.append(.grantsLoaded(path: config.grantsFile, count: list.count))
        } catch let error as GrantFile.Corrupt {
            grants = .failure(error)
        } catch {
            grants = .failure(GrantFile.Corrupt(message: "\(error)"))
        }
        if case .failure(let error) = grants {
            statuses.append(.init(path: config.grantsFile, layer: .grants, loaded: false, rules: 0, error: "corrupt: \(error)"))
            events.append(.grantsError(path: config.grantsFile, message: "\(error)"))
        }

        var policy = PolicySnapshot(promptHelpers: [])
        policy.admin = admin
        policy.user = user
        policy.sensitive = SensitiveMatcher(extra: (admin.files + user.files).flatMap(\.sensitiveApps))
        let adminAgents = admin.files.compactMap(\.promptHelpers)
        let userAgents = user.files.compactMap(\.promptHelpers)
        if !admin.failures.isEmpty {
            policy.promptHelpers = []  // fail closed: nobody may answer prompts for a broken admin layer
        } else if !adminAgents.isEmpty {
            policy.promptHelpers = canonicalHelpers(adminAgents.flatMap { $0 })
        } else if !userAgents.isEmpty {
            policy.promptHelpers = canonicalHelpers(userAgents.flatMap { $0 })
        } else {
            policy.promptHelpers = canonicalHelpers(config.defaultPromptHelpers)
        }
        let adminDeny = admin.files.contains { $0.defaultEffect == .deny }
        let userDeny = user.files.contains { $0.defaultEffect == .deny }
        policy.defaultEffect = adminDeny || userDeny ? .deny : .ask
        policy.defaultFromAdmin = adminDeny
        policy.maxTaskSeconds = admin.files.compactMap(\.maxTaskSeconds).min() ?? 28_800
        policy.whenLocked = admin.files.compactMap(\.whenLocked).first.map { _ in
            // Several admin files: pause wins (the stricter).
            admin.files.contains { $0.whenLocked == .pause } ? .pause : .allow
        } ?? user.files.compactMap(\.whenLocked).first ?? .pause
        policy.audit = AuditSettings.combine(admin: admin.files.map(\.audit),
                                             user: user.failures.isEmpty ? user.files.first?.audit : nil)
        policy.status = PolicyStatus(files: statuses)
        policy.loaded = true
        return Loaded(policy: policy, grants: grants, events: events)
    }

    /// Each listed path and, when it resolves, its real path: the verified exe of a helper is
    /// always the real path (`/proc/PID/exe`), while a policy may name it through a symlink.
    static func canonicalHelpers(_ paths: [String]) -> [String] {
        var result: [String] = []
        for path in paths {
            result.append(path)
            if let real = FileIO.realPath(path), real != path { result.append(real) }
        }
        return result
    }
}
