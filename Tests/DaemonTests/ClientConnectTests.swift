import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

@Suite("Client connect errors")
struct ClientConnectTests {
    @Test("no daemon on the path: a clear 'not running' error naming the socket")
    func noDaemon() throws {
        let dir = TempDirectory("connect")
        defer { dir.remove() }
        let path = dir.file("absent.sock")
        do {
            _ = try DeskgateClient.connectSync(socketPath: path)
            Issue.record("connected to a socket that does not exist")
        } catch let error as DeskgateClientError {
            guard case .daemonNotRunning(let socket, let detail) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(socket == path)
            #expect(detail.contains("No such file"))
        }
    }

    @Test("a path longer than sun_path is refused before connecting, never truncated")
    func pathTooLong() throws {
        // 108 bytes is sun_path's size on Linux; a truncated path could reach a different socket.
        let path = "/tmp/" + String(repeating: "x", count: 120)
        do {
            _ = try DeskgateClient.connectSync(socketPath: path)
            Issue.record("connected with an over-long path")
        } catch let error as DeskgateClientError {
            #expect(error.description.contains("too long"))
        }
    }

    @Test("a live daemon is reached through the same helper")
    func liveDaemon() async throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let client = try DeskgateClient.connectSync(socketPath: daemon.socketPath)
        let reply = try await client.call("daemon.ping")
        #expect(reply.stringValue == "pong")
    }
}
