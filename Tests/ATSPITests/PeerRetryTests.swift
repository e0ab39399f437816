@testable import ATSPI
import Testing

/// The retry bookkeeping for peer-to-peer connections that could not be set up the first time.
@Suite("Peer-to-peer retry")
struct PeerRetryTests {
    func handle() -> AppHandle {
        AppHandle(id: ":1.42", rootPath: "/org/a11y/atspi/accessible/root", pid: 42, exe: nil, startTime: nil, name: "app",
                  toolkit: "gtk", peer: nil, hasFullCache: true)
    }

    @Test("no retry unless set-up failed; then one claimer, only once the delay has passed")
    func claims() {
        let app = handle()
        #expect(!app.claimPeerRetry(now: 0))
        app.peerSetupFailed(now: 1_000)
        let due = 1_000 + AppHandle.peerRetryDelayNanoseconds
        #expect(!app.claimPeerRetry(now: due - 1))
        #expect(app.claimPeerRetry(now: due))
        #expect(!app.claimPeerRetry(now: due))  // one retry at a time
        #expect(app.finishPeerRetry(nil, retryAt: due + 10))
        #expect(!app.claimPeerRetry(now: due + 9))
        #expect(app.claimPeerRetry(now: due + 10))
        #expect(app.finishPeerRetry(nil, retryAt: nil))  // unavailable: never again
        #expect(!app.claimPeerRetry(now: .max))
    }

    @Test("a handle closed during a retry refuses the new connection, and is never retried again")
    func closedDuringRetry() {
        let app = handle()
        app.peerSetupFailed(now: 0)
        #expect(app.claimPeerRetry(now: AppHandle.peerRetryDelayNanoseconds))
        app.closePeer()
        #expect(!app.finishPeerRetry(nil, retryAt: 1))
        #expect(!app.claimPeerRetry(now: .max))
        #expect(app.peer == nil)
    }
}
