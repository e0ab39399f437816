public import BuildInfo
public import JSONRPC

// Every method deskgated serves. Handlers live in the Daemon module; these files are the contract.

public enum DeskgateAPI {
    /// Every client-callable method, in documentation order.
    public static let methods: [any APIMethod.Type] = [
        DaemonPing.self, DaemonInfo.self, DaemonDoctor.self, SessionHello.self, SessionWhoami.self, RPCDiscover.self, RPCCancel.self,
        AppsList.self, TreeSnapshot.self, ElementsFind.self, ElementsWait.self, ElementGet.self, TextRead.self,
        ElementActivate.self, ElementFocus.self, ElementSelect.self, ElementScrollIntoView.self,
        TextSet.self, TextInsert.self, FieldFill.self, FieldFillSecret.self, ValueSet.self, BrowserNavigate.self, EventsSubscribe.self,
        HelperRegister.self, GrantsList.self, GrantsRevoke.self, GrantsRevokeAll.self, BrokerCheck.self,
        BrokerPause.self, BrokerResume.self, BrokerHalt.self, TaskBegin.self, TaskStatus.self, TaskEnd.self,
        AuditQuery.self, AuditVerify.self,
    ]

    public static let descriptors: [MethodDescriptor] = methods.map { $0.descriptor }

    public static func descriptor(named name: String) -> MethodDescriptor? {
        descriptors.first { $0.name == name }
    }

    public static let version = BuildInfo.version
    /// This binary's provenance (``BuildInfo``).
    public static var build: BuildInfo { BuildInfo.current }

    /// What `--version` prints: the version and commit, compiler, build time and dependencies.
    public static var versionText: String { build.description }

    /// ``build`` as `daemon.info` reports it.
    public static var buildJSON: JSONValue {
        let build = self.build
        return ["version": .string(BuildInfo.version), "commit": .string(build.commit), "dirty": .bool(build.dirty),
                "compiler": .string(build.compiler), "built_at": .string(build.builtAt),
                "built_at_source": .string(build.builtAtSource),
                "dependencies": .array(build.dependencies.map {
                    ["name": .string($0.name), "version": .string($0.version), "source": .string($0.source)]
                })]
    }
}
