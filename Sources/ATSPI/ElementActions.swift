import CAtspiConstants
import DBus

/// What `element.activate` did.
public struct ActivateResult: Sendable, Hashable {
    /// The app's answer to `DoAction`.
    public var performed: Bool
    /// The action's name as the toolkit gives it, lower case.
    public var action: String
    /// The element's states afterwards, read until they settled (``settled``).
    public var states: [String]
    /// False when a state the action was expected to change (``SettleExpectation``) had not
    /// changed when the wait for it ended.
    public var settled: Bool
}

/// What `element.focus` did.
public struct FocusResult: Sendable, Hashable {
    /// The app's answer to `GrabFocus`.
    public var accepted: Bool
    public var states: [String]
    /// False when the element was not `focused` when the wait for it ended.
    public var settled: Bool
}

/// What `text.set`, `field.fill` and `text.insert` did. For password fields `matches` compares
/// the length only.
public struct SetTextResult: Sendable, Hashable {
    public var accepted: Bool
    public var matches: Bool
    /// Characters the field holds now (-1 when it did not say).
    public var length: Int
}

/// What `value.set` did.
public struct SetValueResult: Sendable, Hashable {
    public var accepted: Bool
    public var value: Double
    /// False when the value read back had not become the value set when the wait ended.
    public var settled: Bool
}

/// What `element.scroll_into_view` did.
public struct ScrollResult: Sendable, Hashable {
    /// The app's answer to `Component.ScrollTo`.
    public var accepted: Bool
    public var states: [String]
    /// Whether the element reads as on screen afterwards: its `showing` state, or, in a web
    /// page (whose browsers do not update `showing` on scrolling), its extents inside its
    /// document's.
    public var inView: Bool
}

/// A rectangle in screen coordinates, as `Component.GetExtents` gives it.
struct Extents: Sendable, Hashable {
    var x: Int64, y: Int64, width: Int64, height: Int64

    init?(_ reply: [DBusValue]?) {
        guard let fields = reply?.first?.structFields, fields.count == 4 else { return nil }
        let v = fields.map { $0.integerValue ?? 0 }
        (x, y, width, height) = (v[0], v[1], v[2], v[3])
    }

    init(x: Int64, y: Int64, width: Int64, height: Int64) {
        (self.x, self.y, self.width, self.height) = (x, y, width, height)
    }

    /// Whether the two share an area (an empty rectangle shares none).
    func overlaps(_ other: Extents) -> Bool {
        width > 0 && height > 0 && other.width > 0 && other.height > 0
            && x < other.x + other.width && other.x < x + width && y < other.y + other.height && other.y < y + height
    }
}

/// Which state change an action is expected to cause, so its result can wait for it.
///
/// Toolkits apply many actions after answering `DoAction` (GTK3 from an idle callback,
/// LibreOffice through its dispatcher), so states read at once are often the old ones.
struct SettleExpectation: Sendable, Hashable {
    /// States of which at least one is expected to flip.
    var flips: Set<String>

    var isEmpty: Bool { flips.isEmpty }

    static let none = SettleExpectation(flips: [])

    /// For `element.activate`: toggles flip `checked` (or `pressed`), radios become `checked`
    /// unless they are already, expandable elements flip `expanded`.
    static func activation(role: UInt32, states: StateSet) -> SettleExpectation {
        let toggles: Set<UInt32> = [ATSPI_ROLE_TOGGLE_BUTTON.rawValue, ATSPI_ROLE_CHECK_BOX.rawValue,
                                    ATSPI_ROLE_CHECK_MENU_ITEM.rawValue]
        let radios: Set<UInt32> = [ATSPI_ROLE_RADIO_BUTTON.rawValue, ATSPI_ROLE_RADIO_MENU_ITEM.rawValue]
        if toggles.contains(role) || states.contains(ATSPI_STATE_CHECKABLE) { return SettleExpectation(flips: ["checked", "pressed"]) }
        if radios.contains(role), !states.contains(ATSPI_STATE_CHECKED) { return SettleExpectation(flips: ["checked"]) }
        if states.contains(ATSPI_STATE_EXPANDABLE) { return SettleExpectation(flips: ["expanded"]) }
        return .none
    }

    /// Whether the states after the action show the expected change.
    func isMet(before: [String], after: [String]) -> Bool {
        guard !flips.isEmpty else { return true }
        return flips.contains { before.contains($0) != after.contains($0) }
    }
}

extension AccessibilityService {
    func currentStateSet(_ app: AppHandle, path: String) async throws(AccessibilityError) -> StateSet {
        let reply = try await calls.call(app, path, Atspi.accessible, "GetState", timeout: config.readTimeout)
        let words = (reply.first?.arrayValue ?? []).compactMap { $0.integerValue.map { UInt32(truncatingIfNeeded: $0) } }
        return StateSet(words: words)
    }

    func currentStates(_ app: AppHandle, path: String) async throws(AccessibilityError) -> [String] {
        try await currentStateSet(app, path: path).names
    }

    /// Runs `act` while watching the element's `events` (any element's of the app, when `path`
    /// is nil), then reads with `read` until `isDone`
    /// holds: again after each event of the element, for at most ``AccessibilityConfig/settleTimeout``.
    /// Returns the last reading and whether `isDone` held. Nothing polls: without an event
    /// there is no new reading.
    func acting<Reading: Sendable, Acted: Sendable>(
        _ app: AppHandle, path: String?, watching events: Set<WatchedEvent>, lastLook: Bool = false,
        act: () async throws(AccessibilityError) -> Acted,
        read: () async throws(AccessibilityError) -> Reading,
        isDone: (Reading) -> Bool
    ) async throws(AccessibilityError) -> (acted: Acted, reading: Reading, settled: Bool) {
        let pulse = Pulse(sleep: config.sleep)
        // Without a watch the result is read once (and says whether it is done).
        let watch = try? await self.events.watch(app: app.id, path: path, events: events, pulse: pulse)
        do throws(AccessibilityError) {
            let acted = try await act()
            var reading = try await read()
            var settled = isDone(reading)
            if watch != nil, !settled {
                let deadline = Deadline(after: config.settleTimeout)
                while !settled {
                    pulse.reset()
                    guard !deadline.hasPassed, await pulse.wait(deadline.remaining(cap: config.settleTimeout)) else { break }
                    reading = try await read()
                    settled = isDone(reading)
                }
                if Task.isCancelled { throw .cancelled }
                // For changes the app may make without an event: one more read at the end.
                if lastLook && !settled {
                    reading = try await read()
                    settled = isDone(reading)
                }
            }
            if let watch { await self.events.unsubscribe(watch) }
            return (acted, reading, settled)
        } catch {
            if let watch { await self.events.unsubscribe(watch) }
            throw error
        }
    }

    /// `element.activate`: performs the named action (default: the first) and returns the
    /// element's states afterwards, once the change the action is expected to make has shown.
    public func activate(_ target: ResolvedTarget, action: String? = nil) async throws(AccessibilityError) -> ActivateResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.action) else { throw .notSupported("element has no actions") }
        let names = try await actionNames(app, paths: [element.path], deadline: Deadline(after: config.requestDeadline))[0]
        guard !names.isEmpty else { throw .notSupported("element has no actions") }
        var index = 0
        if let action {
            // Lower case: toolkits differ ("Click" in GTK3, "click" in GTK4, "Press" in Qt).
            guard let found = names.firstIndex(where: { $0 == action.lowercased() }) else {
                throw .notSupported("element has no action \(Text.quoted(action))", actions: names)
            }
            index = found
        }
        let before = node.states.names
        let expectation = SettleExpectation.activation(role: node.role, states: node.states)
        let outcome = try await acting(app, path: element.path, watching: expectation.isEmpty ? [] : [.states]) {
            () async throws(AccessibilityError) -> Bool in
            let reply = try await calls.call(app, element.path, Atspi.action, "DoAction", [.int32(Int32(index))],
                                             timeout: config.actionTimeout)
            return reply.first?.boolValue ?? false
        } read: { () async throws(AccessibilityError) -> [String] in
            try await currentStates(app, path: element.path)
        } isDone: { expectation.isMet(before: before, after: $0) }
        return ActivateResult(performed: outcome.acted, action: names[index], states: outcome.reading, settled: outcome.settled)
    }

    /// `element.focus`: `Component.GrabFocus`, then the element's states once it is `focused`
    /// (toolkits set it when the window system confirms the change, a moment later).
    public func focus(_ target: ResolvedTarget) async throws(AccessibilityError) -> FocusResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.component) else { throw .notSupported("element cannot take focus") }
        let outcome = try await acting(app, path: element.path, watching: [.states]) { () async throws(AccessibilityError) -> Bool in
            let reply = try await calls.call(app, element.path, Atspi.component, "GrabFocus", timeout: config.actionTimeout)
            return reply.first?.boolValue ?? false
        } read: { () async throws(AccessibilityError) -> [String] in
            try await currentStates(app, path: element.path)
        } isDone: { $0.contains("focused") }
        return FocusResult(accepted: outcome.acted, states: outcome.reading, settled: outcome.settled)
    }

    /// What a text field holds, for telling whether an edit took: its text, or for a password
    /// field only its length (its text is never read).
    private func textState(_ app: AppHandle, path: String, password: Bool) async throws(AccessibilityError)
        -> (text: String?, length: Int)
    {
        let count = try await calls.property(app, path, Atspi.text, "CharacterCount").integerValue ?? -1
        if password { return (nil, Int(count)) }
        let text = count > 0 ? try await readTextContent(app, path: path) : ""
        return (text, Int(count))
    }

    /// An editable text element, or why it is not one. Chromium's web inputs have no
    /// EditableText interface at all; the message says so rather than "not found".
    private func editableText(_ target: ResolvedTarget) async throws(AccessibilityError) -> (AppHandle, ElementTarget, AccessibleNode) {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.editableText) else {
            if node.states.isEditable {
                throw .notSupported("the app offers no way to edit this field's text through accessibility (it has no EditableText interface; see docs/apps.md)")
            }
            throw .notSupported("element is not editable text")
        }
        return (app, element, node)
    }

    /// `text.set` and `field.fill`: replaces the text, then reads it back until it shows the new
    /// text. For password fields only the length is compared; their content is never read.
    /// An app that answers but leaves the text as it was (Firefox's web inputs) is an error.
    public func setText(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult {
        let (app, element, node) = try await editableText(target)
        if value.utf8.contains(0) { throw .invalidArgument(field: "value", "contains a NUL character") }
        let expected = value.unicodeScalars.count
        let password = node.isPassword
        let before = try await textState(app, path: element.path, password: password)
        func isDone(_ now: (text: String?, length: Int)) -> Bool { password ? now.length == expected : now.text == value }
        let outcome = try await acting(app, path: element.path, watching: [.text]) { () async throws(AccessibilityError) -> Bool in
            let reply = try await calls.call(app, element.path, Atspi.editableText, "SetTextContents", [.string(value)],
                                             timeout: config.actionTimeout)
            return reply.first?.boolValue ?? false
        } read: { () async throws(AccessibilityError) -> (text: String?, length: Int) in
            try await textState(app, path: element.path, password: password)
        } isDone: { isDone($0) }
        let now = outcome.reading
        if !outcome.settled, now.text == before.text, now.length == before.length, !isDone(before) {
            throw .ignored("the app answered but the field's text did not change: it ignores text edits through accessibility (see docs/apps.md)")
        }
        return SetTextResult(accepted: outcome.acted, matches: isDone(now), length: now.length)
    }

    /// `field.fill_secret`: `setText` into a field that is, live, a password field (its text is
    /// then never read back, only its length).
    public func setPassword(_ target: ResolvedTarget, value: String) async throws(AccessibilityError) -> SetTextResult {
        let (_, _, node) = try await editableText(target)
        guard node.isPassword else { throw .notSupported("the field is no longer a password field") }
        return try await setText(target, value: value)
    }

    /// `text.insert`: inserts `value` at character offset `at` (default: the caret, else the
    /// end), then reads the field back until its length grew by the inserted characters.
    public func insertText(_ target: ResolvedTarget, value: String, at offset: Int?) async throws(AccessibilityError) -> SetTextResult {
        let (app, element, _) = try await editableText(target)
        if value.utf8.contains(0) { throw .invalidArgument(field: "value", "contains a NUL character") }
        let count = Int(try await calls.property(app, element.path, Atspi.text, "CharacterCount").integerValue ?? 0)
        var position: Int
        if let offset {
            guard offset >= 0, offset <= count else {
                throw .invalidArgument(field: "at", "offset \(offset) is outside the text (0...\(count))")
            }
            position = offset
        } else {
            let caret = Int(try await calls.property(app, element.path, Atspi.text, "CaretOffset").integerValue ?? -1)
            position = (0...count).contains(caret) ? caret : count
        }
        let inserted = value.unicodeScalars.count
        let outcome = try await acting(app, path: element.path, watching: [.text]) { () async throws(AccessibilityError) -> Bool in
            // The length argument counts bytes in at-spi2-atk and characters in Qt: give the
            // byte count, which both accept for the whole string.
            let reply = try await calls.call(app, element.path, Atspi.editableText, "InsertText",
                                             [.int32(Int32(clamping: position)), .string(value), .int32(Int32(clamping: value.utf8.count))],
                                             timeout: config.actionTimeout)
            return reply.first?.boolValue ?? false
        } read: { () async throws(AccessibilityError) -> Int in
            Int(try await calls.property(app, element.path, Atspi.text, "CharacterCount").integerValue ?? -1)
        } isDone: { $0 == count + inserted }
        if !outcome.settled, outcome.reading == count, inserted > 0 {
            throw .ignored("the app answered but the field's text did not change: it ignores text edits through accessibility (see docs/apps.md)")
        }
        return SetTextResult(accepted: outcome.acted, matches: outcome.settled, length: outcome.reading)
    }

    /// `value.set`: sets `Value.CurrentValue` if it lies within the element's minimum and
    /// maximum, then reads it back until it shows the new value.
    public func setValue(_ target: ResolvedTarget, value: Double) async throws(AccessibilityError) -> SetValueResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.value), !node.isPassword else { throw .notSupported("element has no value") }
        guard value.isFinite else { throw .invalidValue("value must be a finite number") }
        let minimum = try await calls.property(app, element.path, Atspi.value, "MinimumValue").doubleValue ?? -.infinity
        let maximum = try await calls.property(app, element.path, Atspi.value, "MaximumValue").doubleValue ?? .infinity
        guard value >= minimum, value <= maximum else {
            throw .invalidValue("value \(value) is outside \(minimum)...\(maximum)", minimum: minimum, maximum: maximum)
        }
        let outcome = try await acting(app, path: element.path, watching: [.properties]) { () async throws(AccessibilityError) in
            _ = try await calls.call(app, element.path, Atspi.properties, "Set",
                                     [.string(Atspi.value), .string("CurrentValue"), .variant(.double(value))],
                                     timeout: config.actionTimeout)
        } read: { () async throws(AccessibilityError) -> Double in
            try await calls.property(app, element.path, Atspi.value, "CurrentValue").doubleValue ?? .nan
        } isDone: { $0 == value }
        return SetValueResult(accepted: outcome.settled, value: outcome.reading, settled: outcome.settled)
    }

    /// `element.scroll_into_view`: `Component.ScrollTo(anywhere)`, then the element's states
    /// until it reads as on screen (``ScrollResult/inView``). Browsers scroll after answering and
    /// announce it with no event of the element's own: the app's events are watched, with one
    /// last look at the end of the wait.
    public func scrollIntoView(_ target: ResolvedTarget) async throws(AccessibilityError) -> ScrollResult {
        let (app, element, node) = try await confirmedElement(target)
        guard node.interfaces.contains(.component) else { throw .notSupported("element cannot be scrolled to") }
        let viewport = try await nearestDocument(app, path: element.path)
        let outcome = try await acting(app, path: viewport == nil ? element.path : nil,
                                       watching: viewport == nil ? [.states] : [.states, .properties, .children],
                                       lastLook: true) { () async throws(AccessibilityError) -> Bool in
            let reply = try await calls.call(app, element.path, Atspi.component, "ScrollTo",
                                             [.uint32(ATSPI_SCROLL_ANYWHERE.rawValue)], timeout: config.actionTimeout)
            return reply.first?.boolValue ?? false
        } read: { () async throws(AccessibilityError) -> (states: [String], inView: Bool) in
            let states = try await currentStates(app, path: element.path)
            guard !states.contains("showing"), let viewport, viewport != element.path else {
                return (states, states.contains("showing"))
            }
            let screen: [DBusValue] = [.uint32(0)]
            let extents = try await calls.batch(app, [(element.path, Atspi.component, "GetExtents", screen),
                                                      (viewport, Atspi.component, "GetExtents", screen)],
                                                timeout: config.readTimeout)
            guard let own = Extents(try? extents[0].get()), let page = Extents(try? extents[1].get()) else { return (states, false) }
            return (states, own.overlaps(page))
        } isDone: { $0.inView }
        return ScrollResult(accepted: outcome.acted, states: outcome.reading.states, inView: outcome.reading.inView)
    }
}
