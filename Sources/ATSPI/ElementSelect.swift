import CAtspiConstants
import DBus

/// Which option `element.select` chooses.
public enum OptionChoice: Sendable, Hashable {
    /// The option with this exact name.
    case name(String)
    /// The option at this position among the list's children (0-based).
    case index(Int)
}

/// What `element.select` did.
public struct SelectResult: Sendable, Hashable {
    /// The option chosen: its name and position among the list's options.
    public var option: String
    public var index: Int
    /// Whether the option reads as selected afterwards (the list's `IsChildSelected`, or the
    /// option's `selected` state).
    public var selected: Bool
    /// `selection` (`Selection.SelectChild` on the list) or `action` (the option's own action,
    /// where the list refuses SelectChild, as Chromium's do).
    public var method: String
    /// False when the choice had not shown when the wait for it ended.
    public var settled: Bool
}

extension AccessibilityService {
    /// `element.select`: chooses an option of a combo box or list through AT-SPI `Selection`.
    ///
    /// The list is the element itself when it implements Selection, else its first child that
    /// does (a combo box's popup menu in Firefox and Chromium); the options are the list's
    /// children, or the children of its only child when that is a menu or list (a GTK3 combo
    /// box). When the list refuses
    /// `SelectChild`, the option's `select` action (else its first action) is performed. The
    /// result is read back until the option shows as chosen (bounded, woken by the app's events).
    public func select(_ target: ResolvedTarget, choice: OptionChoice) async throws(AccessibilityError) -> SelectResult {
        let (app, _, node) = try await confirmedElement(target)
        var list = node
        if !node.interfaces.contains(.selection) {
            let children = try await readNodes(app, paths: try await childPaths(app, of: node.path), withChildren: false)
            guard let inner = children.first(where: { $0.interfaces.contains(.selection) }) else {
                throw .notSupported("element has no options to choose from (it is not a list or combo box with Selection)")
            }
            list = inner
        }
        var options = try await readNodes(app, paths: try await childPaths(app, of: list.path), withChildren: true)
        // A GTK3 combo box is the Selection itself, its one child a menu holding the options.
        let holders: Set<UInt32> = [ATSPI_ROLE_MENU.rawValue, ATSPI_ROLE_LIST.rawValue, ATSPI_ROLE_LIST_BOX.rawValue]
        if options.count == 1, holders.contains(options[0].role), !options[0].children.isEmpty {
            options = try await readNodes(app, paths: options[0].children, withChildren: false)
        }
        let index: Int
        switch choice {
        case .index(let wanted):
            guard options.indices.contains(wanted) else {
                throw .invalidArgument(field: "index", "there are \(options.count) options (0...\(max(0, options.count - 1)))")
            }
            index = wanted
        case .name(let wanted):
            let matching = options.indices.filter { options[$0].name == wanted }
            guard let first = matching.first else {
                throw .notSupported("no option named \(Text.quoted(wanted))", actions: options.prefix(50).map(\.name))
            }
            guard matching.count == 1 else {
                throw .invalidArgument(field: "option_name", "\(matching.count) options are named \(Text.quoted(wanted)); choose by index")
            }
            index = first
        }
        let option = options[index]
        // Chosen: the list says so (GTK3 combo boxes mark no item selected while closed), or
        // the option does (`selected`).
        let isChosen = { () async throws(AccessibilityError) -> Bool in
            let listSays = try? await self.calls.call(app, list.path, Atspi.selection, "IsChildSelected",
                                                      [.int32(Int32(index))], timeout: self.config.readTimeout)
            if listSays?.first?.boolValue == true { return true }
            return try await self.currentStateSet(app, path: option.path).contains(ATSPI_STATE_SELECTED)
        }
        if try await isChosen() {
            return SelectResult(option: option.name, index: index, selected: true, method: "none", settled: true)
        }
        // Selection first; the path the app's events announce is the option's or the list's.
        var outcome = try await acting(app, path: nil, watching: [.states, .properties]) { () async throws(AccessibilityError) -> Bool in
            let reply = try await calls.call(app, list.path, Atspi.selection, "SelectChild", [.int32(Int32(index))],
                                             timeout: config.actionTimeout)
            return reply.first?.boolValue ?? false
        } read: { () async throws(AccessibilityError) -> Bool in
            try await isChosen()
        } isDone: { $0 }
        var method = "selection"
        if !outcome.acted && !outcome.reading {
            let names = try await actionNames(app, paths: [option.path], deadline: Deadline(after: config.requestDeadline))[0]
            guard !names.isEmpty else {
                throw .ignored("the list refused to select \(Text.quoted(option.name)) and the option has no action")
            }
            let actionIndex = names.firstIndex(of: "select") ?? 0
            method = "action"
            outcome = try await acting(app, path: nil, watching: [.states, .properties]) { () async throws(AccessibilityError) -> Bool in
                let reply = try await calls.call(app, option.path, Atspi.action, "DoAction", [.int32(Int32(actionIndex))],
                                                 timeout: config.actionTimeout)
                return reply.first?.boolValue ?? false
            } read: { () async throws(AccessibilityError) -> Bool in
                try await isChosen()
            } isDone: { $0 }
        }
        return SelectResult(option: option.name, index: index, selected: outcome.reading, method: method, settled: outcome.settled)
    }
}
