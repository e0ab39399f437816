public import JSONRPC

// Every method deskgated serves. Handlers live in the Daemon module; these files are the contract.

public enum DeskgateAPI {
    /// Every client-callable method, in documentation order.
    public static let methods: [any APIMethod.Type] = [
        DaemonPing.self, DaemonInfo.self, DaemonDoctor.self, SessionHello.self, SessionWhoami.self, RPCDiscover.self, RPCCancel.self,
        AppsList.self, TreeSnapshot.self, ElementsFind.self, ElementsWait.self, ElementGet.self, TextRead.self,
        ElementActivate.self, ElementFocus.self, ElementSelect.self, ElementScrollIntoView.self,
        TextSet.self, TextInsert.self, FieldFill.self, ValueSet.self, BrowserNavigate.self, EventsSubscribe.self,
        HelperRegister.self, GrantsList.self, GrantsRevoke.self, GrantsRevokeAll.self, BrokerCheck.self,
        AuditQuery.self, AuditVerify.self,
    ]

    public static let descriptors: [MethodDescriptor] = methods.map { $0.descriptor }

    public static func descriptor(named name: String) -> MethodDescriptor? {
        descriptors.first { $0.name == name }
    }

    public static let version = "0.1.0"
}
