import DBus

/// Action names as toolkits give them.
///
/// `Action.GetActions` returns each action's localized name, description and key binding in one
/// reply, but not every toolkit fills it in: Chromium's localized names are empty strings, and
/// Gecko answers `[]` the first time an element is asked (its cache domain for actions is off
/// until someone asks) and then `";;"` in every field. `Action.GetName(i)`, the non-localized
/// name, is right in both, so entries that are not a usable name are asked by index.
enum ActionNames {
    /// Lower-cased names of a `GetActions` reply; nil where the entry is no usable name and
    /// must be asked with `GetName`.
    static func parse(_ reply: [DBusValue]?) -> [String?] {
        (reply?.first?.arrayValue ?? []).map { entry in
            guard let name = entry.structFields?.first?.stringValue, usable(name) else { return nil }
            return name.lowercased()
        }
    }

    /// Whether a toolkit's action name can be shown and matched: it has a letter and is not a
    /// key-binding triple (`"mnemonic;sequence;shortcut"`).
    static func usable(_ name: String) -> Bool {
        !name.contains(";") && name.unicodeScalars.contains { $0.properties.isAlphabetic }
    }
}

extension AppHandle {
    /// Gecko (Firefox, Thunderbird) answers the first `GetActions` of an element with no actions
    /// while its cache fills; `NActions` is right at once.
    var reportsActionsLate: Bool { toolkit == "Gecko" }

    /// Browsers: their elements live in web documents that have origins.
    var hasWebContent: Bool { toolkit == "Gecko" || toolkit == "Chromium" }

    /// Gecko shows an opened web `<select>`'s options in a popup of the browser window, outside
    /// the page (``AccessibilityService/chooseInPopup(_:combo:options:index:)``).
    var showsSelectPopupsOutsidePage: Bool { toolkit == "Gecko" }
}

extension AccessibilityService {
    /// The action names of elements, lower case, one list per path: `GetActions` for all at
    /// once, then `GetName` for entries that are not usable names (and, in apps that report
    /// actions late, `NActions` for elements that answered with none).
    func actionNames(_ app: AppHandle, paths: [String], deadline: Deadline) async throws(AccessibilityError) -> [[String]] {
        guard !paths.isEmpty else { return [] }
        let replies = try await calls.batch(app, paths.map { ($0, Atspi.action, "GetActions", []) },
                                            timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
        var parsed = replies.map { ActionNames.parse(try? $0.get()) }
        if app.reportsActionsLate {
            let empty = parsed.indices.filter { parsed[$0].isEmpty }
            if !empty.isEmpty {
                let counts = try await calls.batch(app, empty.map { (paths[$0], Atspi.properties, "Get",
                                                                      [.string(Atspi.action), .string("NActions")]) },
                                                   timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
                for (index, count) in zip(empty, counts) {
                    let n = (try? count.get())?.first?.unwrapped.integerValue ?? 0
                    parsed[index] = [String?](repeating: nil, count: Int(max(0, min(n, 64))))
                }
            }
        }
        var asks: [(index: Int, action: Int)] = []
        for (index, names) in parsed.enumerated() {
            for (action, name) in names.enumerated() where name == nil { asks.append((index, action)) }
        }
        if !asks.isEmpty {
            let names = try await calls.batch(app, asks.map { (paths[$0.index], Atspi.action, "GetName", [.int32(Int32($0.action))]) },
                                              timeout: deadline.remaining(cap: config.readTimeout), deadline: deadline)
            for (ask, reply) in zip(asks, names) {
                parsed[ask.index][ask.action] = (try? reply.get())?.first?.stringValue?.lowercased()
            }
        }
        // An action whose name the app gives nowhere keeps its place (activation is by index).
        return parsed.map { $0.map { $0 ?? "" } }
    }
}
