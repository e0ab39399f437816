import CAtspiConstants
import DBus
import Glibc

/// One resolution per request: the app and element a request names are read live, once,
/// before the broker decides; the action re-reads them right before it acts (``confirm(_:)``).
extension AccessibilityService {
    /// Roles whose `labelled-by` label is read: what a person calls a field is its label.
    static let labelledRoles: Set<UInt32> = [
        ATSPI_ROLE_TEXT.rawValue, ATSPI_ROLE_ENTRY.rawValue, ATSPI_ROLE_PASSWORD_TEXT.rawValue,
        ATSPI_ROLE_SPIN_BUTTON.rawValue, ATSPI_ROLE_COMBO_BOX.rawValue, ATSPI_ROLE_SLIDER.rawValue,
        ATSPI_ROLE_CHECK_BOX.rawValue, ATSPI_ROLE_RADIO_BUTTON.rawValue, ATSPI_ROLE_TOGGLE_BUTTON.rawValue,
        ATSPI_ROLE_LIST_BOX.rawValue, ATSPI_ROLE_DOCUMENT_TEXT.rawValue,
    ]

    /// The app with this id, or the only app with this name.
    /// - Throws: ``AccessibilityError/appNotFound(_:someUnresponsive:)``,
    ///   ``AccessibilityError/ambiguousApp(_:candidates:)``.
    public func resolveApp(_ idOrName: String) async throws(AccessibilityError) -> ResolvedTarget {
        ResolvedTarget(app: try await registry.resolve(idOrName).target)
    }

    /// The element behind a ref, read live: role, name, states, interfaces and (for fields) its
    /// label. A ref whose element now has another role is another element: ``AccessibilityError/changed(_:)``.
    public func resolveElement(ref: String) async throws(AccessibilityError) -> ResolvedTarget {
        let entry = try target(ref: ref)
        let app = try await appHandle(for: entry)
        let (node, label) = try await readElement(app, path: entry.path, ref: ref)
        if node.role != entry.role {
            throw .changed(ChangeDetail(what: "role", was: AtspiNames.role(entry.role), now: AtspiNames.role(node.role), ref: ref))
        }
        let origin = try await documentOrigin(app, path: entry.path)
        return ResolvedTarget(app: app.target, element: ElementTarget(ref: ref, node: node, label: label, shownName: entry.name,
                                                                       origin: origin))
    }

    /// The element of `app` under `ref`, for requests naming both (a snapshot's root).
    public func resolveElement(ref: String, in app: ResolvedTarget) async throws(AccessibilityError) -> ResolvedTarget {
        let entry = try target(ref: ref)
        guard entry.app == app.app.id else {
            throw .elementGone("ref \(Text.quoted(ref, limit: 64)) is not an element of this app")
        }
        return try await resolveElement(ref: ref)
    }

    /// Reads one element and, for field-like roles, its label.
    func readElement(_ app: AppHandle, path: String, ref: String) async throws(AccessibilityError)
        -> (AccessibleNode, String?)
    {
        guard let node = try await readNodes(app, paths: [path], withChildren: false).first else {
            throw .elementGone("element \(ref) no longer exists")
        }
        if node.states.isDefunct { throw .elementGone("element \(ref) is defunct") }
        let label = Self.labelledRoles.contains(node.role) ? try await labelNames(app, path: path).first : nil
        return (node, label)
    }

    /// Right before acting: re-reads the element's role, name and label and checks the app's
    /// process is the one decided on (same pid, start time and executable). Returns the app and
    /// the element as read now.
    /// - Throws: ``AccessibilityError/changed(_:)`` when anything differs; nothing is done then.
    func confirm(_ target: ResolvedTarget) async throws(AccessibilityError) -> (AppHandle, AccessibleNode?) {
        let app = try await registry.live(target.app.id)
        let startTime = ProcessFacts.startTime(of: app.pid)
        let exe = ProcessFacts.executable(of: app.pid)
        if app.pid != target.app.pid || startTime != target.app.startTime || exe != target.app.exe {
            throw .changed(ChangeDetail(what: "app", was: "\(target.app.exe ?? "?") (pid \(target.app.pid))",
                                        now: "\(exe ?? "?") (pid \(app.pid))", ref: target.element?.ref))
        }
        guard let element = target.element else { return (app, nil) }
        let (node, label) = try await readElement(app, path: element.path, ref: element.ref)
        let role = AtspiNames.role(node.role)
        if role != element.role {
            throw .changed(ChangeDetail(what: "role", was: element.role, now: role, ref: element.ref))
        }
        if node.name != element.name {
            throw .changed(ChangeDetail(what: "name", was: element.name, now: node.name, ref: element.ref))
        }
        if label != element.label {
            throw .changed(ChangeDetail(what: "label", was: element.label ?? "", now: label ?? "", ref: element.ref))
        }
        if app.hasWebContent {
            let origin = try await documentOrigin(app, path: element.path)
            if origin != element.origin {
                throw .changed(ChangeDetail(what: "origin", was: element.origin ?? "", now: origin ?? "", ref: element.ref))
            }
        }
        return (app, node)
    }

    // MARK: - Web origins

    /// The origin of the web document holding the element at `path`, in apps with web content
    /// (``AppHandle/hasWebContent``): the nearest `document web` ancestor (or the element
    /// itself), its URL from `Document.GetAttributes` (`DocURL` in Gecko, `URI` in Chromium),
    /// cut to `scheme://host[:port]`. Nil when there is no such document, it has no URL, or the
    /// URL has no host: never anything the page or the client says.
    func documentOrigin(_ app: AppHandle, path: String) async throws(AccessibilityError) -> String? {
        guard let document = try await nearestDocument(app, path: path) else { return nil }
        let reply = try? await calls.call(app, document, Atspi.document, "GetAttributes", timeout: config.readTimeout)
        return Self.origin(fromDocumentAttributes: reply)
    }

    /// The path of the nearest `document web` ancestor of `path` (or `path` itself), in apps
    /// with web content; nil elsewhere or when there is none.
    func nearestDocument(_ app: AppHandle, path: String) async throws(AccessibilityError) -> String? {
        guard app.hasWebContent else { return nil }
        var current = path
        for _ in 0..<128 {
            let replies = try await calls.batch(app, [(current, Atspi.accessible, "GetRole", []),
                                                      (current, Atspi.properties, "Get", [.string(Atspi.accessible), .string("Parent")])],
                                                timeout: config.readTimeout)
            guard let role = (try? replies[0].get())?.first?.integerValue else { return nil }
            if UInt32(truncatingIfNeeded: role) == ATSPI_ROLE_DOCUMENT_WEB.rawValue { return current }
            guard let parent = (try? replies[1].get())?.first?.unwrapped.objectReference?.path,
                  parent != "/org/a11y/atspi/null", parent != current, parent != app.rootPath
            else { return nil }
            current = parent
        }
        return nil
    }

    /// The origin in a `Document.GetAttributes` reply: `DocURL` (Gecko) or `URI` (Chromium).
    static func origin(fromDocumentAttributes reply: [DBusValue]?) -> String? {
        var attributes: [String: String] = [:]
        for entry in reply?.first?.dictionaryEntries ?? [] {
            if let key = entry.key.stringValue, let value = entry.value.stringValue { attributes[key] = value }
        }
        return (attributes["DocURL"] ?? attributes["URI"]).flatMap(WebOrigin.of(url:))
    }

    // MARK: - Fields

    /// `field.fill`'s target: the editable field named or labelled `field` (see ``FieldMatcher``).
    /// - Throws: ``AccessibilityError/fieldNotFound(_:)``, ``AccessibilityError/ambiguousField(_:candidates:)``.
    /// `passwordOnly`: only a password field is found; a matching field of another kind is
    /// ``AccessibilityError/notSupported(_:)`` (a secret is never typed into a field that can be read back).
    public func resolveField(app idOrName: String, field: String, passwordOnly: Bool = false) async throws(AccessibilityError)
        -> ResolvedTarget
    {
        guard !FieldMatcher.normalized(field).isEmpty else {
            throw .invalidArgument(field: "field", "must name a field")
        }
        let handle = try await registry.resolve(idOrName)
        let deadline = Deadline(after: config.requestDeadline)
        let tree = try await fetchTree(handle, root: handle.rootPath, maxDepth: nil, maxNodes: 100_000,
                                       pruneHidden: false, deadline: deadline)
        let editable = try await withInterfaces(handle, TreeOrder.depthFirst(tree, maxDepth: nil, showingOnly: false)
            .map(\.node).filter(\.states.isEditable), deadline: deadline)
            // Text fields, whether or not the app lets them be edited through accessibility
            // (Chromium's web inputs have no EditableText): text.set then says which it is.
            .filter { $0.interfaces.contains(.editableText) || $0.interfaces.contains(.text) }
        let labels = try await firstLabels(handle, of: editable.map(\.path), known: tree, deadline: deadline)
        var found = FieldMatcher.matches(field, candidates: zip(editable, labels).map { node, label in
            FieldMatcher.Candidate(name: node.name, label: label)
        })
        guard !found.isEmpty else { throw .fieldNotFound(field) }
        if passwordOnly {
            found = found.filter { editable[$0].isPassword }
            guard !found.isEmpty else {
                throw .notSupported("the field \"\(field)\" is not a password field; secrets are filled only into password fields")
            }
        }
        let refList = refs.refs(app: handle.id, elements: found.map { (editable[$0].path, editable[$0].role, editable[$0].name) })
        if found.count > 1 {
            throw .ambiguousField(field, candidates: zip(found, refList).map { index, ref in
                FieldCandidate(ref: ref, role: AtspiNames.role(editable[index].role), name: editable[index].name,
                               label: labels[index])
            })
        }
        let node = editable[found[0]]
        return ResolvedTarget(app: handle.target,
                              element: ElementTarget(ref: refList[0], node: node, label: labels[found[0]], shownName: node.name))
    }

    /// The first `labelled-by` label's name of each object (nil where it has none), with one
    /// batch of relation reads and one of the labels not already in `known`.
    func firstLabels(_ app: AppHandle, of paths: [String], known: FetchedTree?, deadline: Deadline) async throws(AccessibilityError)
        -> [String?]
    {
        guard !paths.isEmpty else { return [] }
        let replies = try await calls.batch(app, paths.map { ($0, Atspi.accessible, "GetRelationSet", []) },
                                      timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
        var labelPaths: [String?] = []
        var missing: Set<String> = []
        for reply in replies {
            var first: String?
            for relation in (try? reply.get())?.first?.arrayValue ?? [] {
                guard let fields = relation.structFields, fields.count == 2,
                      fields[0].integerValue == Int64(AtspiNames.labelledBy) else { continue }
                first = (fields[1].arrayValue ?? []).compactMap { $0.objectReference?.path }.first
                if first != nil { break }
            }
            if let first, known?[first] == nil { missing.insert(first) }
            labelPaths.append(first)
        }
        var names: [String: String] = [:]
        for node in try await readNodes(app, paths: Array(missing), withChildren: false, interfaces: false) {
            names[node.path] = node.name
        }
        return labelPaths.map { path in path.flatMap { known?[$0]?.name ?? names[$0] } }
    }
}

/// How `field.fill` finds its field: the pure rule, tested without a desktop.
///
/// A field's display name is its first `labelled-by` label when that is not empty, else its
/// accessible name. Tiers, first tier with any match wins:
/// 1. display name equal to `field`;
/// 2. accessible name equal to `field`;
/// 3. display name equal after normalising both (case folded, whitespace trimmed and collapsed,
///    one trailing colon dropped);
/// 4. accessible name equal after normalising.
/// More than one match in the winning tier is ambiguous. The broker then decides on the field
/// found (its role and display name), never on the client's string.
public enum FieldMatcher {
    public struct Candidate: Sendable, Hashable {
        public var name: String
        public var label: String?
        public init(name: String, label: String?) {
            self.name = name
            self.label = label
        }

        var displayName: String {
            if let label, !label.isEmpty { return label }
            return name
        }
    }

    /// Indices of the candidates `field` selects.
    public static func matches(_ field: String, candidates: [Candidate]) -> [Int] {
        let wanted = normalized(field)
        let tiers: [(Candidate) -> Bool] = [
            { $0.displayName == field },
            { $0.name == field },
            { normalized($0.displayName) == wanted },
            { normalized($0.name) == wanted },
        ]
        for tier in tiers {
            let found = candidates.indices.filter { tier(candidates[$0]) }
            if !found.isEmpty { return found }
        }
        return []
    }

    /// Case folded, whitespace trimmed and collapsed to single spaces, one trailing ":" dropped.
    public static func normalized(_ s: String) -> String {
        var words = s.lowercased().split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        if words.hasSuffix(":") { words.removeLast() }
        while words.hasSuffix(" ") { words.removeLast() }
        return words
    }
}

/// Facts about processes read from `/proc`.
enum ProcessFacts {
    /// `/proc/PID/exe`, or nil when it cannot be read.
    static func executable(of pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Field 22 of `/proc/PID/stat` (start time in clock ticks after boot), or nil.
    static func startTime(of pid: Int32) -> UInt64? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0, let paren = buffer[0..<count].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After the command name: state is field 3, so start time (22) is the 20th field after ")".
        let fields = buffer[(paren + 1)..<count].split(separator: UInt8(ascii: " "))
        guard fields.count >= 20 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }
}
