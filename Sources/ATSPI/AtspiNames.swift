import CAtspiConstants

/// Role, state and relation names derived from the numbers in `atspi-constants.h`.
enum AtspiNames {
    /// The standard role name, as pyatspi's `getRoleName()` prints it ("push button").
    static func role(_ number: UInt32) -> String {
        AtspiTables.roleNames[number] ?? "unknown"
    }

    static let roleNumbers: [String: UInt32] = {
        var map: [String: UInt32] = [:]
        for (number, name) in AtspiTables.roleNames { map[name] = number }
        return map
    }()

    static let stateBits: [String: UInt32] = {
        var map: [String: UInt32] = [:]
        for (bit, name) in AtspiTables.stateNames { map[name] = bit }
        return map
    }()

    /// Accepts "multi line", "multi_line", "Multi-Line" for "multi-line".
    static func normalizedState(_ name: String) -> String {
        String(name.lowercased().map { $0 == " " || $0 == "_" ? "-" : $0 })
    }

    static func normalizedRole(_ name: String) -> String {
        String(name.lowercased().map { $0 == "-" || $0 == "_" ? " " : $0 })
    }

    static let passwordRole = ATSPI_ROLE_PASSWORD_TEXT.rawValue
    static let applicationRole = ATSPI_ROLE_APPLICATION.rawValue
    static let labelledBy = ATSPI_RELATION_LABELLED_BY.rawValue
    static let labelFor = ATSPI_RELATION_LABEL_FOR.rawValue
}

/// An AT-SPI state set (two 32-bit words on the wire).
struct StateSet: Sendable, Hashable {
    var bits: UInt64

    init(bits: UInt64) { self.bits = bits }

    init(words: [DBusWord]) {
        var bits: UInt64 = 0
        if words.count > 0 { bits |= UInt64(words[0]) }
        if words.count > 1 { bits |= UInt64(words[1]) << 32 }
        self.bits = bits
    }

    func contains(_ state: AtspiStateType) -> Bool {
        state.rawValue < 64 && bits & (1 << UInt64(state.rawValue)) != 0
    }

    func contains(bit: UInt32) -> Bool { bit < 64 && bits & (1 << UInt64(bit)) != 0 }

    /// Lower-case state names in bit order.
    var names: [String] {
        var result: [String] = []
        var remaining = bits
        while remaining != 0 {
            let bit = UInt32(remaining.trailingZeroBitCount)
            remaining &= remaining - 1
            if let name = AtspiTables.stateNames[bit] { result.append(name) }
        }
        return result
    }

    var isShowing: Bool { contains(ATSPI_STATE_SHOWING) }
    var isDefunct: Bool { contains(ATSPI_STATE_DEFUNCT) }
    var isEditable: Bool { contains(ATSPI_STATE_EDITABLE) }
    var isFocusable: Bool { contains(ATSPI_STATE_FOCUSABLE) }
    var isSelectable: Bool { contains(ATSPI_STATE_SELECTABLE) }
    var isActive: Bool { contains(ATSPI_STATE_ACTIVE) }
}

typealias DBusWord = UInt32

/// AT-SPI interfaces an object implements.
struct InterfaceSet: OptionSet, Sendable, Hashable {
    let rawValue: UInt16
    static let action = InterfaceSet(rawValue: 1 << 0)
    static let component = InterfaceSet(rawValue: 1 << 1)
    static let text = InterfaceSet(rawValue: 1 << 2)
    static let editableText = InterfaceSet(rawValue: 1 << 3)
    static let value = InterfaceSet(rawValue: 1 << 4)
    static let selection = InterfaceSet(rawValue: 1 << 5)
    static let collection = InterfaceSet(rawValue: 1 << 6)
    static let application = InterfaceSet(rawValue: 1 << 7)

    init(rawValue: UInt16) { self.rawValue = rawValue }

    init(names: [String]) {
        var set: InterfaceSet = []
        for name in names {
            switch name {
            case "org.a11y.atspi.Action": set.insert(.action)
            case "org.a11y.atspi.Component": set.insert(.component)
            case "org.a11y.atspi.Text": set.insert(.text)
            case "org.a11y.atspi.EditableText": set.insert(.editableText)
            case "org.a11y.atspi.Value": set.insert(.value)
            case "org.a11y.atspi.Selection": set.insert(.selection)
            case "org.a11y.atspi.Collection": set.insert(.collection)
            case "org.a11y.atspi.Application": set.insert(.application)
            default: break
            }
        }
        self = set
    }
}

/// D-Bus names of AT-SPI.
enum Atspi {
    static let registry = "org.a11y.atspi.Registry"
    static let rootPath = "/org/a11y/atspi/accessible/root"
    static let registryPath = "/org/a11y/atspi/registry"
    static let cachePath = "/org/a11y/atspi/cache"
    static let accessible = "org.a11y.atspi.Accessible"
    static let application = "org.a11y.atspi.Application"
    static let action = "org.a11y.atspi.Action"
    static let component = "org.a11y.atspi.Component"
    static let text = "org.a11y.atspi.Text"
    static let editableText = "org.a11y.atspi.EditableText"
    static let value = "org.a11y.atspi.Value"
    static let selection = "org.a11y.atspi.Selection"
    static let document = "org.a11y.atspi.Document"
    static let table = "org.a11y.atspi.Table"
    static let collection = "org.a11y.atspi.Collection"
    static let cache = "org.a11y.atspi.Cache"
    static let properties = "org.freedesktop.DBus.Properties"
}
