import DBus

/// Which Secret Service item a request names: its exact label, or attributes it carries.
public enum SecretQuery: Sendable, Hashable {
    case label(String)
    case attributes([String: String])
}

/// An item found for a request: what the broker decides on (its label) and where it lives.
public struct SecretItem: Sendable, Hashable {
    /// The item's label, exactly as the keyring holds it (a `secret_item` rule matches it).
    public let label: String
    /// The item's object path on the session bus.
    public let path: String

    public init(label: String, path: String) {
        self.label = label
        self.path = path
    }
}

/// Why no secret could be had. Never carries the secret.
public enum SecretError: Error, Sendable, Equatable {
    /// No Secret Service on the session bus (deskgate never starts one), or no session bus.
    case unavailable(String)
    /// The Secret Service answered with an error, or not in time.
    case failed(String)
    /// The matching item is in a locked keyring; deskgate never unlocks one.
    case locked(String)
    case notFound(String)
    case ambiguous(String, count: Int)
    /// The item changed between the decision and the read (its label is no longer the one decided on).
    case changed(String)
    /// The secret is not UTF-8 text (or holds NUL), so it cannot be typed into a field.
    case notText
}

/// A secret read from the keyring. Its bytes are zeroed when it is released; a String made
/// from it for the accessibility call cannot be, so that copy lives until Swift frees it.
public final class SecretValue: @unchecked Sendable {
    private var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    deinit {
        for index in bytes.indices { bytes[index] = 0 }
    }

    /// Characters (Unicode scalars) in the secret.
    public var length: Int { String(decoding: bytes, as: UTF8.self).unicodeScalars.count }

    /// The secret as text, for the one call that types it into a field.
    public func withText<R>(_ body: (String) async throws -> R) async rethrows -> R {
        try await body(String(decoding: bytes, as: UTF8.self))
    }
}

/// A client of the desktop's Secret Service (`org.freedesktop.secrets`, the freedesktop Secret
/// Service API that gnome-keyring and KeePassXC serve) on the session bus, over libdbus.
///
/// Every call has a timeout and carries `NO_AUTO_START`, so a request never starts a keyring.
/// Secrets are transferred with the `plain` algorithm: on the session bus, in the clear (see
/// docs/security.md). Locked items are never unlocked (that would put up the keyring's own
/// prompt): they are an error.
public struct SecretServiceClient: Sendable {
    static let busName = "org.freedesktop.secrets"
    static let servicePath = "/org/freedesktop/secrets"
    static let serviceInterface = "org.freedesktop.Secret.Service"
    static let itemInterface = "org.freedesktop.Secret.Item"
    static let properties = "org.freedesktop.DBus.Properties"

    let timeout: Duration
    /// Opens a connection to the session bus (a new one per request: the keyring is rarely used).
    let connect: @Sendable () async throws(DBusError) -> DBusConnection

    public init(timeout: Duration = .seconds(5),
                connect: @escaping @Sendable () async throws(DBusError) -> DBusConnection = { () async throws(DBusError) in
                    try await DBusConnection.openSessionBus()
                }) {
        self.timeout = timeout
        self.connect = connect
    }

    /// The one unlocked item `query` names.
    public func find(_ query: SecretQuery) async throws(SecretError) -> SecretItem {
        let bus = try await open()
        defer { bus.close() }
        return try await find(query, on: bus)
    }

    /// Reads `item`'s secret, after checking that its label is still the one decided on.
    public func read(_ item: SecretItem) async throws(SecretError) -> SecretValue {
        let bus = try await open()
        defer { bus.close() }
        guard try await label(of: item.path, on: bus) == item.label else {
            throw .changed("the keyring item's label changed after the decision")
        }
        let opened = try await call(bus, Self.servicePath, Self.serviceInterface, "OpenSession",
                                    [.string("plain"), .variant(.string(""))])
        guard opened.count == 2, let session = opened[1].stringValue else {
            throw .failed("the Secret Service's OpenSession answered \(opened.count) values")
        }
        let reply: Result<[UInt8]?, SecretError>
        do {
            reply = .success(try await callDecoding(bus, item.path, Self.itemInterface, "GetSecret", [.objectPath(session)]) {
                Self.secretBytes(&$0)
            })
        } catch {
            reply = .failure(error)
        }
        // The service also ends the session when this connection closes (right after).
        _ = try? await call(bus, session, "org.freedesktop.Secret.Session", "Close", [])
        guard let bytes = try reply.get() else { throw .failed("the Secret Service's GetSecret answered no secret") }
        guard !bytes.contains(0), String(validating: bytes, as: UTF8.self) != nil else { throw .notText }
        return SecretValue(bytes)
    }

    // MARK: - Steps

    private func open() async throws(SecretError) -> DBusConnection {
        do {
            return try await connect()
        } catch {
            throw .unavailable("no session bus (\(error.message))")
        }
    }

    func find(_ query: SecretQuery, on bus: DBusConnection) async throws(SecretError) -> SecretItem {
        let attributes: [(String, String)] = switch query {
        case .label: []
        case .attributes(let pairs): pairs.sorted { $0.key < $1.key }
        }
        let found = try await call(bus, Self.servicePath, Self.serviceInterface, "SearchItems",
                                   [.stringDictionary(attributes)])
        guard found.count == 2 else { throw .failed("the Secret Service's SearchItems answered \(found.count) values") }
        let unlocked = (found[0].arrayValue ?? []).compactMap(\.stringValue)
        let locked = (found[1].arrayValue ?? []).compactMap(\.stringValue)
        let what: String
        var candidates: [SecretItem] = []
        var lockedMatches = 0
        switch query {
        case .label(let wanted):
            what = "labelled \"\(wanted)\""
            for path in unlocked where try await label(of: path, on: bus) == wanted {
                candidates.append(SecretItem(label: wanted, path: path))
            }
            if candidates.isEmpty {
                for path in locked where (try? await label(of: path, on: bus)) == wanted { lockedMatches += 1 }
            }
        case .attributes(let pairs):
            what = "with the attributes " + pairs.keys.sorted().map { "\($0)=\(pairs[$0]!)" }.joined(separator: ", ")
            for path in unlocked { candidates.append(SecretItem(label: try await label(of: path, on: bus), path: path)) }
            lockedMatches = locked.count
        }
        if candidates.count > 1 { throw .ambiguous("\(candidates.count) keyring items are \(what)", count: candidates.count) }
        if let item = candidates.first { return item }
        if lockedMatches > 0 { throw .locked("the keyring item \(what) is in a locked keyring; unlock it yourself (deskgate never does)") }
        throw .notFound("no keyring item is \(what)")
    }

    private func label(of path: String, on bus: DBusConnection) async throws(SecretError) -> String {
        let reply = try await call(bus, path, Self.properties, "Get", [.string(Self.itemInterface), .string("Label")])
        guard let label = reply.first?.stringValue else { throw .failed("a keyring item has no Label") }
        return label
    }

    private func call(_ bus: DBusConnection, _ path: String, _ interface: String, _ member: String,
                      _ args: [DBusValue]) async throws(SecretError) -> [DBusValue] {
        do {
            return try await bus.call(destination: Self.busName, path: path, interface: interface, member: member,
                                      args: args, timeout: timeout, autoStart: false)
        } catch {
            throw Self.mapped(error)
        }
    }

    private func callDecoding<T: Sendable>(_ bus: DBusConnection, _ path: String, _ interface: String, _ member: String,
                                           _ args: [DBusValue],
                                           decode: @escaping @Sendable (inout DBusReader) -> T) async throws(SecretError) -> T {
        do {
            return try await bus.call(destination: Self.busName, path: path, interface: interface, member: member,
                                      args: args, timeout: timeout, autoStart: false, decode: decode)
        } catch {
            throw Self.mapped(error)
        }
    }

    static func mapped(_ error: DBusError) -> SecretError {
        switch error.name {
        case DBusError.serviceUnknownName, DBusError.nameHasNoOwnerName:
            .unavailable("no Secret Service (org.freedesktop.secrets) is running on the session bus; deskgate does not start one")
        case "org.freedesktop.Secret.Error.IsLocked":
            .locked("the keyring holding the item is locked; unlock it yourself (deskgate never does)")
        case "org.freedesktop.Secret.Error.NoSuchObject", DBusError.unknownObjectName:
            .notFound("the keyring item is gone")
        default:
            if error.isTimeout { .failed("the Secret Service did not answer in time") }
            else { .failed("the Secret Service failed: \(error.name)") }
        }
    }

    /// The `value` bytes of a `GetSecret` reply `(oayays)`, read straight from the message.
    static func secretBytes(_ reader: inout DBusReader) -> [UInt8]? {
        guard var secret = reader.enter() else { return nil }
        guard secret.string() != nil, secret.advance(), secret.bytes() != nil, secret.advance() else { return nil }
        return secret.bytes()
    }
}
