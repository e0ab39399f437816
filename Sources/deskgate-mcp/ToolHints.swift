import DeskgateAPI
import MCP

/// What a tool's MCP annotations need to know about its method beyond the risk class.
struct MethodTraits: Sendable, Equatable {
    /// Calling the method again with the same arguments has no further effect.
    var idempotent: Bool
    /// The method reaches beyond the local desktop (the web, other machines): MCP's "open world".
    var openWorld: Bool = false
    /// For an ungated method (no risk class): it changes nothing, e.g. a dry run.
    var changesNothing: Bool = false
}

/// The one place tool annotations come from: the method's risk class, plus the few facts in
/// ``traits``. docs/mcp.md has the resulting table.
enum ToolHints {
    /// Facts per method. Every method a tool narrows has an entry (`CatalogTests`); a method
    /// without one gets MCP's cautious defaults (not idempotent, open world).
    static let traits: [String: MethodTraits] = [
        AppsList.name: MethodTraits(idempotent: true),
        TreeSnapshot.name: MethodTraits(idempotent: true),
        ElementsFind.name: MethodTraits(idempotent: true),
        TextRead.name: MethodTraits(idempotent: true),
        // A click may toggle a check box, submit a form twice or open a second window.
        ElementActivate.name: MethodTraits(idempotent: false),
        // Focusing the focused element again changes nothing.
        ElementFocus.name: MethodTraits(idempotent: true),
        // Each replaces the whole text or value with the one given: the same call twice leaves
        // the element as the first one did.
        TextSet.name: MethodTraits(idempotent: true),
        FieldFill.name: MethodTraits(idempotent: true),
        FieldFillSecret.name: MethodTraits(idempotent: true),
        ValueSet.name: MethodTraits(idempotent: true),
        // A dry run: nothing is done and nobody is prompted.
        BrokerCheck.name: MethodTraits(idempotent: true, changesNothing: true),
        // Choosing the chosen option again, or scrolling to what is in view, changes nothing.
        ElementSelect.name: MethodTraits(idempotent: true),
        ElementScrollIntoView.name: MethodTraits(idempotent: true),
        // Each call adds the text once more.
        TextInsert.name: MethodTraits(idempotent: false),
        ElementsWait.name: MethodTraits(idempotent: true),
        DaemonDoctor.name: MethodTraits(idempotent: true),
        // Loading a URL reaches the web (the method says so), and loading it again fetches it again.
        BrowserNavigate.name: MethodTraits(idempotent: false, openWorld: BrowserNavigate.opensWorld),
        // Each call asks the person again and starts another task; ending an ended task changes nothing.
        TaskBegin.name: MethodTraits(idempotent: false),
        TaskEnd.name: MethodTraits(idempotent: true),
    ]

    /// The annotations of a tool narrowing `method` (gated as `gating`).
    ///
    /// observe and read: read-only, not destructive. act and write: may change the app, so
    /// destructive (MCP's "destructive" means "not only additive", and a click or a replaced
    /// text is not additive). admin, or an ungated method not known to change nothing: treated
    /// like act.
    static func annotations(method: String, gating: Gating) -> Tool.Annotations {
        let facts = traits[method]
        let readOnly: Bool
        switch gating.riskClass {
        case .observe?, .read?: readOnly = true
        case .act?, .write?, .secret?, .admin?, .control?: readOnly = false
        case nil: readOnly = facts?.changesNothing == true
        }
        return Tool.Annotations(readOnlyHint: readOnly, destructiveHint: !readOnly,
                                idempotentHint: facts?.idempotent ?? false, openWorldHint: facts?.openWorld ?? true)
    }
}
