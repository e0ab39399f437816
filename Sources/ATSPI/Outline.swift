/// The outline format of snapshots: one line per node, `  - ROLE "NAME" [ref=REF] (STATE, …): TEXT`.
/// In NAME and TEXT, `"`, `\` and `[` are escaped with a backslash and line breaks are spaces.
enum Outline {
    /// States left out of outlines: nearly every visible widget has them, so they only cost tokens.
    static let quietStates: Set<String> = [
        "enabled", "sensitive", "visible", "showing", "opaque", "single-line", "horizontal", "vertical",
        "resizable", "selectable-text", "has-tooltip",
    ]

    /// What a line shows in place of content the caller may not read.
    static let withheld = "[content withheld]"

    static func render(_ nodes: [EmittedNode], _ extras: [NodeExtras], _ refs: [String]) -> String {
        var out = ""
        for (index, item) in nodes.enumerated() {
            out += String(repeating: "  ", count: item.depth)
            out += "- " + AtspiNames.role(item.node.role) + " \"" + escaped(extras[index].label ?? item.node.name) + "\" [ref=" + refs[index] + "]"
            let states = item.node.states.names.filter { !quietStates.contains($0) }
            if !states.isEmpty { out += " (" + states.joined(separator: ", ") + ")" }
            if extras[index].contentWithheld {
                out += ": " + withheld
            } else if !item.node.isPassword, let text = extras[index].text, !text.isEmpty {
                out += ": " + escaped(String(text.prefix(500)))
            }
            out += "\n"
        }
        return out
    }

    static func escaped(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            // A name or text with "[ref=…]" in it cannot pass for a ref of the daemon's.
            case "[": out += "\\["
            case "\n", "\r", "\r\n", "\t": out += " "
            default: out.append(ch)
            }
        }
        return out
    }
}
