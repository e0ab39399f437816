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
    /// `selection` (`Selection.SelectChild` on the list), `popup` (the item of the popup the combo
    /// box opened: Firefox), `action` (the option's own action: Chromium, and where a list refuses
    /// SelectChild) or `none` (it already was chosen).
    public var method: String
    /// False when the choice had not shown when the wait for it ended.
    public var settled: Bool
}

extension AccessibilityService {
    /// `element.select`: chooses an option of a combo box or list.
    ///
    /// The list is the element itself when it implements Selection, else its first child that
    /// does (a combo box's popup menu in Firefox and Chromium); the options are the list's
    /// children, or the children of its only child when that is a menu or list (a GTK3 combo
    /// box). In web pages the choice is made as a person makes it, so the page hears of it:
    /// Firefox through the popup its combo box opens (``chooseInPopup(_:combo:options:index:)``),
    /// Chromium by the option's own action. Elsewhere AT-SPI `Selection.SelectChild`, and the
    /// option's `select` action (else its first) where the list refuses. The result is read back
    /// until the option shows as chosen (bounded, woken by the app's events).
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
        // The path the app's events announce is the option's or the list's: watch the app.
        let bySelection = { () async throws(AccessibilityError) -> (acted: Bool, reading: Bool, settled: Bool) in
            try await self.acting(app, path: nil, watching: [.states, .properties]) { () async throws(AccessibilityError) -> Bool in
                let reply = try await self.calls.call(app, list.path, Atspi.selection, "SelectChild", [.int32(Int32(index))],
                                                      timeout: self.config.actionTimeout)
                return reply.first?.boolValue ?? false
            } read: { () async throws(AccessibilityError) -> Bool in
                try await isChosen()
            } isDone: { $0 }
        }
        let byAction = { (actionIndex: Int) async throws(AccessibilityError) -> (acted: Bool, reading: Bool, settled: Bool) in
            try await self.acting(app, path: nil, watching: [.states, .properties]) { () async throws(AccessibilityError) -> Bool in
                let reply = try await self.calls.call(app, option.path, Atspi.action, "DoAction", [.int32(Int32(actionIndex))],
                                                      timeout: self.config.actionTimeout)
                return reply.first?.boolValue ?? false
            } read: { () async throws(AccessibilityError) -> Bool in
                try await isChosen()
            } isDone: { $0 }
        }
        // A web page reacts to a choice only as a person makes it (Selection.SelectChild sets the
        // option quietly, and the page's change event never fires). Firefox: through the popup
        // the combo box opens; Chromium: the option's own action. Elsewhere Selection first, the
        // option's action where the list refuses.
        if app.showsSelectPopupsOutsidePage, node.role == ATSPI_ROLE_COMBO_BOX.rawValue {
            let byPopup = try await acting(app, path: nil, watching: [.states, .properties]) { () async throws(AccessibilityError) -> Bool in
                try await self.chooseInPopup(app, combo: node.path, options: options.map(\.name), index: index)
            } read: { () async throws(AccessibilityError) -> Bool in
                try await isChosen()
            } isDone: { $0 }
            if byPopup.acted {
                return SelectResult(option: option.name, index: index, selected: byPopup.reading, method: "popup",
                                    settled: byPopup.settled)
            }
        }
        let names = try await actionNames(app, paths: [option.path], deadline: Deadline(after: config.requestDeadline))[0]
        let actionIndex = names.firstIndex(of: "select") ?? names.firstIndex(of: "click") ?? (names.isEmpty ? nil : 0)
        var method: String
        var outcome: (acted: Bool, reading: Bool, settled: Bool)
        if app.hasWebContent, !app.showsSelectPopupsOutsidePage, let actionIndex {
            method = "action"
            outcome = try await byAction(actionIndex)
        } else {
            method = "selection"
            outcome = try await bySelection()
            if !outcome.acted && !outcome.reading {
                guard let actionIndex else {
                    throw .ignored("the list refused to select \(Text.quoted(option.name)) and the option has no action")
                }
                method = "action"
                outcome = try await byAction(actionIndex)
            }
        }
        return SelectResult(option: option.name, index: index, selected: outcome.reading, method: method, settled: outcome.settled)
    }

    /// Firefox shows a web `<select>`'s options, once opened, in a popup of its own window (a
    /// `menu` of `menu item`s outside the page); choosing there is what a person does, and the
    /// page hears of it. Performs the combo box's `open` action, finds the popup among the
    /// elements that announce themselves (bounded by the settle wait), checks that it lists
    /// exactly the combo box's options, and clicks the item at `index`. False when there is no
    /// such popup: nothing but the opening was done.
    func chooseInPopup(_ app: AppHandle, combo: String, options: [String], index: Int) async throws(AccessibilityError) -> Bool {
        // A loaded browser may take seconds to show its popup (three settle times were not
        // enough on a CI machine with both cores busy); the wait ends as soon as it shows, and a
        // popup that never comes costs the request's own deadline before the fallback.
        let deadline = Deadline(after: config.requestDeadline)
        let names = try await actionNamesSoon(app, path: combo, wanted: ["open"], deadline: deadline)
        guard let open = names.firstIndex(of: "open") else { return false }
        let pulse = Pulse(sleep: config.sleep)
        guard let watch = try? await events.watch(app: app.id, path: nil, events: [.states, .children], pulse: pulse) else {
            return false
        }
        let clicked: Result<Bool, AccessibilityError>
        do throws(AccessibilityError) {
            // As a person's click would: focus the combo box first (nothing changes when it has
            // the focus already).
            _ = try? await calls.call(app, combo, Atspi.component, "GrabFocus", timeout: config.actionTimeout)
            _ = try await calls.call(app, combo, Atspi.action, "DoAction", [.int32(Int32(open))], timeout: config.actionTimeout)
            clicked = .success(try await clickPopupItem(app, combo: combo, options: options, index: index, pulse: pulse,
                                                        deadline: deadline))
        } catch {
            clicked = .failure(error)
        }
        await events.unsubscribe(watch)
        return try clicked.get()
    }

    /// The element's action names, asked again every 100 ms (for at most 2 s) until one of
    /// `wanted` is among them: an element Firefox has just made (a fresh page's select, a popup's
    /// items) may answer with no names, or empty ones, at first.
    private func actionNamesSoon(_ app: AppHandle, path: String, wanted: Set<String>, deadline: Deadline) async throws(AccessibilityError)
        -> [String]
    {
        let soon = Deadline(after: .seconds(2))
        var names = try await actionNames(app, paths: [path], deadline: deadline)[0]
        while !names.contains(where: wanted.contains), !soon.hasPassed, !deadline.hasPassed, !Task.isCancelled {
            try? await config.sleep(.milliseconds(100))
            names = try await actionNames(app, paths: [path], deadline: deadline)[0]
        }
        return names
    }

    /// Waits for the popup ``chooseInPopup(_:combo:options:index:)`` opened: each element that
    /// announces itself is looked at once, and a `menu` (or a `menu item`'s `menu`) becomes a
    /// candidate. Candidates are looked at again on every event and every 250 ms until the
    /// deadline, because a popup may announce itself before its items have their names; the one
    /// whose items are exactly `options` gets its item at `index` clicked. A quiet spell does not
    /// end the wait (a busy browser may show its popup seconds later, with nothing in between).
    private func clickPopupItem(_ app: AppHandle, combo: String, options: [String], index: Int, pulse: Pulse,
                                deadline: Deadline) async throws(AccessibilityError) -> Bool
    {
        var looked: Set<String> = []
        var candidates: [String] = []
        while !deadline.hasPassed, !pulse.isClosed, !Task.isCancelled {
            _ = await pulse.wait(deadline.remaining(cap: .milliseconds(250)))
            let speakers = pulse.takeSources().filter { looked.insert($0).inserted }
            for node in try await readNodes(app, paths: speakers, withChildren: false, interfaces: false) {
                var menu: String?
                if node.role == ATSPI_ROLE_MENU.rawValue {
                    menu = node.path
                } else if node.role == ATSPI_ROLE_MENU_ITEM.rawValue {
                    menu = try? await calls.property(app, node.path, Atspi.accessible, "Parent").objectReference?.path
                }
                if let menu, menu != combo, !candidates.contains(menu) { candidates.append(menu) }
            }
            for menu in candidates {
                guard let children = try? await childPaths(app, of: menu),
                      let items = try? await readNodes(app, paths: children, withChildren: false, interfaces: false),
                      items.map(\.name) == options, items.allSatisfy({ $0.role == ATSPI_ROLE_MENU_ITEM.rawValue }) else { continue }
                let item = items[index].path
                let actions = try await actionNamesSoon(app, path: item, wanted: ["click", "select"], deadline: deadline)
                guard let click = actions.firstIndex(of: "click") ?? actions.firstIndex(of: "select") else { return false }
                let reply = try await calls.call(app, item, Atspi.action, "DoAction", [.int32(Int32(click))], timeout: config.actionTimeout)
                return reply.first?.boolValue ?? false
            }
        }
        return false
    }
}
