#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import DeskgateAPI

/// A question the broker answers from rules and remembered grants alone, never by prompting:
/// listings and streams (ten apps must not mean ten prompts) and content inside results (a
/// snapshot must not turn into a prompt storm).
public struct StandingQuestion: Sendable {
    /// The request as the broker decides it (method and class, verified client, live target).
    public var request: BrokerRequest
    /// Methods whose remembered grants also answer yes for this target, besides the request's
    /// own: a person who let a client see an app's tree let it see the app in a listing.
    public var grantMethods: Set<String>

    public init(_ request: BrokerRequest, grantMethods: Set<String> = []) {
        self.request = request
        self.grantMethods = grantMethods
    }

    /// Observing a whole app (per app, for `apps.list` and `events.subscribe`): rules naming
    /// `method` or the observe class, and grants for seeing that app's tree.
    public static func observeApp(client: ClientIdentity, method: String, target: TargetInfo) -> StandingQuestion {
        let app = TargetInfo(appName: target.appName, appExe: target.appExe, appPid: target.appPid)
        return StandingQuestion(BrokerRequest(client: client, method: method, riskClass: .observe, target: app, interactive: false),
                                grantMethods: appObserveMethods)
    }

    /// Reading an element's content inside a result (text, values, text events): decided as
    /// `text.read` of that element would be (its role, display name and, in a browser, its
    /// page's origin), without asking.
    public static func readContent(client: ClientIdentity, app: TargetInfo, role: String, name: String,
                                   origin: String? = nil) -> StandingQuestion {
        var target = TargetInfo(appName: app.appName, appExe: app.appExe, appPid: app.appPid)
        target.role = role
        target.name = name
        target.origin = origin
        return StandingQuestion(BrokerRequest(client: client, method: TextRead.name, riskClass: .read, target: target,
                                              interactive: false))
    }

    /// App-level observe methods whose grants cover seeing the app in listings and streams.
    public static let appObserveMethods: Set<String> = [AppsList.name, TreeSnapshot.name, ElementsFind.name, EventsSubscribe.name]
}

extension Broker {
    /// Answers standing questions under one lock: allowed only where a rule or a remembered grant
    /// allows; an *ask* is a no. Nothing is prompted, consumed or remembered.
    public func standing(_ questions: [StandingQuestion]) -> [Decision] {
        zip(questions, evaluateAll(questions.map { ($0.request, $0.grantMethods) })).map { question, evaluation in
            switch evaluation {
            case .decided(let decision):
                return decision
            case .ask(let explicit):
                return Evaluator.deny(question.request, .wouldPrompt, rule: explicit,
                                      detail: "no rule or remembered grant allows it, and listings, streams and content never ask")
            }
        }
    }

    /// The counter of changes that can change decisions (see ``BrokerEvent/decisionsChanged(generation:)``).
    public var generation: UInt64 { withState { state, _ in state.generation } }
}
