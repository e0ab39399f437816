#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import JSONRPC

/// How long a remembered prompt answer lasts.
public enum GrantLifetime: String, Sendable, Hashable {
    /// Until the client's connection closes. Never written to disk.
    case session
    /// One hour from the answer (wall clock), persisted.
    case hour = "1h"
    /// Until revoked, persisted.
    case always
}

/// Exactly what a prompt showed: the grant covers this and nothing wider.
public struct GrantScope: Sendable, Hashable {
    public var clientExe: String
    public var clientScript: String?
    public var method: String
    public var appName: String?
    public var appExe: String?
    public var role: String?
    public var name: String?
    /// The web origin the prompt showed: a grant made in a browser covers that site only.
    public var origin: String?

    public init(clientExe: String, clientScript: String?, method: String, appName: String?, appExe: String?,
                role: String?, name: String?, origin: String? = nil) {
        self.origin = origin
        self.clientExe = clientExe
        self.clientScript = clientScript
        self.method = method
        self.appName = appName
        self.appExe = appExe
        self.role = role
        self.name = name
    }

    /// The scope of a request: every field, so a grant for one field never covers another.
    public init(_ request: BrokerRequest) {
        self.init(clientExe: request.client.exe, clientScript: request.client.script, method: request.method,
                  appName: request.target?.appName, appExe: request.target?.appExe, role: request.target?.role,
                  name: request.target?.name, origin: request.target?.origin)
    }
}

/// A remembered answer to a prompt.
public struct RememberedGrant: Sendable, Hashable {
    public var id: String
    public var lifetime: GrantLifetime
    public var scope: GrantScope
    public var created: Date
    /// Wall-clock expiry (allow_1h); the grant is dead at exactly this instant.
    public var expires: Date?
    /// For session and once grants: the connection they belong to.
    public var connectionID: UInt64?
    /// The prompt that created it, for the audit trail.
    public var promptID: String?

    public var isPersistent: Bool { lifetime == .hour || lifetime == .always }

    public func isLive(at now: Date) -> Bool { expires.map { now < $0 } ?? true }

    public var json: JSONValue {
        var object: JSONObject = ["id": .string(id), "layer": "grants", "lifetime": .string(lifetime.rawValue),
                                  "client_exe": .string(scope.clientExe)]
        if let script = scope.clientScript { object.append("client_script", .string(script)) }
        object.append("method", .string(scope.method))
        if let app = scope.appName { object.append("app", .string(app)) }
        if let exe = scope.appExe { object.append("app_exe", .string(exe)) }
        if let role = scope.role { object.append("role", .string(role)) }
        if let name = scope.name { object.append("name", .string(name)) }
        if let origin = scope.origin { object.append("origin", .string(origin)) }
        object.append("created", .string(GrantFile.timestamp(created)))
        if let expires { object.append("expires", .string(GrantFile.timestamp(expires))) }
        if let connectionID { object.append("connection", .int(Int64(bitPattern: connectionID))) }
        if let promptID { object.append("prompt_id", .string(promptID)) }
        return .object(object)
    }
}

/// The grants file: `{"version": 1, "grants": [...]}`, persistent grants only.
enum GrantFile {
    struct Corrupt: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static func timestamp(_ date: Date) -> String { Timestamp.rfc3339(date, milliseconds: true) }

    static func encode(_ grants: [RememberedGrant]) -> [UInt8] {
        let list = grants.filter(\.isPersistent).sorted { $0.id < $1.id }.map { grant -> JSONValue in
            var object = grant.json.objectValue!
            object["connection"] = nil
            object["layer"] = nil
            return .object(object)
        }
        var bytes = JSONWriter.bytes(["version": 1, "grants": .array(list)], sortedKeys: true)
        bytes.append(0x0A)
        return bytes
    }

    /// Parses the file strictly: any unexpected shape makes the whole file corrupt.
    static func decode(_ bytes: [UInt8]) throws(Corrupt) -> [RememberedGrant] {
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch { throw Corrupt(message: "not valid JSON: \(error)") }
        guard let root = value.objectValue, root["version"]?.intValue == 1, let list = root["grants"]?.arrayValue else {
            throw Corrupt(message: "expected {\"version\": 1, \"grants\": [...]}")
        }
        var grants: [RememberedGrant] = []
        var ids: Set<String> = []
        for (index, item) in list.enumerated() {
            func bad(_ why: String) -> Corrupt { Corrupt(message: "grant #\(index + 1): \(why)") }
            guard let object = item.objectValue else { throw bad("not an object") }
            let known: Set<String> = ["id", "lifetime", "client_exe", "client_script", "method", "app", "app_exe", "role",
                                      "name", "origin", "created", "expires", "prompt_id"]
            if let unknown = object.keys.first(where: { !known.contains($0) }) { throw bad("unknown key '\(unknown)'") }
            guard let id = object["id"]?.stringValue, !id.isEmpty, ids.insert(id).inserted else { throw bad("missing or duplicate id") }
            guard let lifetimeText = object["lifetime"]?.stringValue, let lifetime = GrantLifetime(rawValue: lifetimeText),
                  lifetime == .hour || lifetime == .always else { throw bad("lifetime must be \"1h\" or \"always\"") }
            guard let exe = object["client_exe"]?.stringValue, !exe.isEmpty else { throw bad("missing client_exe") }
            guard let method = object["method"]?.stringValue, PolicyParser.gatedMethods.contains(method) else {
                throw bad("missing or unknown method")
            }
            func optional(_ key: String) throws(Corrupt) -> String? {
                guard let field = object[key] else { return nil }
                guard let text = field.stringValue else { throw bad("'\(key)' must be a string") }
                return text
            }
            guard let createdText = object["created"]?.stringValue, let created = Timestamp.parse(createdText) else {
                throw bad("missing or invalid created")
            }
            var expires: Date?
            if let text = try optional("expires") {
                guard let date = Timestamp.parse(text) else { throw bad("invalid expires") }
                expires = date
            }
            if lifetime == .hour, expires == nil { throw bad("a 1h grant needs expires") }
            let scope = GrantScope(clientExe: exe, clientScript: try optional("client_script"), method: method,
                                   appName: try optional("app"), appExe: try optional("app_exe"),
                                   role: try optional("role"), name: try optional("name"), origin: try optional("origin"))
            grants.append(RememberedGrant(id: id, lifetime: lifetime, scope: scope, created: created, expires: expires,
                                          connectionID: nil, promptID: try optional("prompt_id")))
        }
        return grants
    }
}

/// Remembered grants in memory, indexed by their exact scope.
struct GrantTable: Sendable {
    private(set) var byID: [String: RememberedGrant] = [:]
    private var byScope: [GrantScope: Set<String>] = [:]

    var all: [RememberedGrant] { byID.values.sorted { $0.id < $1.id } }
    var count: Int { byID.count }

    mutating func insert(_ grant: RememberedGrant) {
        remove(grant.id)
        byID[grant.id] = grant
        byScope[grant.scope, default: []].insert(grant.id)
    }

    @discardableResult
    mutating func remove(_ id: String) -> RememberedGrant? {
        guard let grant = byID.removeValue(forKey: id) else { return nil }
        byScope[grant.scope]?.remove(id)
        if byScope[grant.scope]?.isEmpty == true { byScope[grant.scope] = nil }
        return grant
    }

    mutating func removeAll() -> [RememberedGrant] {
        let removed = all
        byID = [:]
        byScope = [:]
        return removed
    }

    /// The live grant covering `request`: of several, the lowest id (order-independent).
    func covering(_ request: BrokerRequest, now: Date) -> RememberedGrant? {
        // No grants (the common case): skip building and hashing the request's scope.
        guard !byID.isEmpty, let ids = byScope[GrantScope(request)] else { return nil }
        var best: RememberedGrant?
        for id in ids {
            guard let grant = byID[id], grant.isLive(at: now) else { continue }
            if let connection = grant.connectionID, connection != request.client.connectionID { continue }
            if best.map({ grant.id < $0.id }) ?? true { best = grant }
        }
        return best
    }

    /// Removes the session grants of a closed connection.
    mutating func removeConnection(_ connectionID: UInt64) -> [RememberedGrant] {
        let doomed = byID.values.filter { $0.connectionID == connectionID }
        for grant in doomed { remove(grant.id) }
        return doomed
    }

    /// Drops expired grants; returns whether a persistent one went.
    mutating func pruneExpired(now: Date) -> Bool {
        let expired = byID.values.filter { !$0.isLive(at: now) }
        for grant in expired { remove(grant.id) }
        return expired.contains(where: \.isPersistent)
    }
}
