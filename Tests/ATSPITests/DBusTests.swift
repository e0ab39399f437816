import DBus
import Foundation
import Synchronization
import Testing

@Suite("D-Bus wrapper against a private dbus-daemon")
struct DBusTests {
    @Test("Hello gives a unique name; GetId and ListNames answer")
    func busBasics() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let unique = try #require(connection.uniqueName)
        #expect(unique.hasPrefix(":"))
        let id = try await connection.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                           interface: "org.freedesktop.DBus", member: "GetId", timeout: .seconds(2))
        #expect(id.first?.stringValue?.count == 32)
        let names = try await connection.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                              interface: "org.freedesktop.DBus", member: "ListNames", timeout: .seconds(2))
        let list = (names.first?.arrayValue ?? []).compactMap { $0.stringValue }
        #expect(!list.isEmpty)
        #expect(list.contains(unique))
        #expect(list.contains("org.freedesktop.DBus"))
        let pid = try await connection.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                            interface: "org.freedesktop.DBus", member: "GetConnectionUnixProcessID",
                                            args: [.string(unique)], timeout: .seconds(2))
        #expect(pid.first?.integerValue == Int64(getpid()))
    }

    @Test("Errors keep their D-Bus names")
    func errorNames() async throws {
        let bus = try PrivateBus(withEchoService: true)
        let connection = try await bus.connect()
        defer { connection.close() }
        await #expect(throws: DBusError.self) {
            _ = try await connection.call(destination: "org.example.Nobody", path: "/", interface: "org.example.X",
                                          member: "Y", timeout: .seconds(2))
        }
        do {
            _ = try await connection.call(destination: "org.example.Nobody", path: "/", interface: "org.example.X",
                                          member: "Y", timeout: .seconds(2))
        } catch {
            #expect(error.name == DBusError.serviceUnknownName)
            #expect(error.isPeerGone)
        }
        do {
            _ = try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                          interface: "org.deskgate.TestEcho", member: "NoSuchMethod", timeout: .seconds(2))
            Issue.record("expected an error")
        } catch {
            #expect(error.name == DBusError.unknownMethodName)
        }
        do {
            _ = try await connection.call(destination: PrivateBus.echoServiceName, path: "/not/there",
                                          interface: "org.deskgate.TestEcho", member: "Echo",
                                          args: [.variant(.int32(1))], timeout: .seconds(2))
            Issue.record("expected an error")
        } catch {
            #expect(error.name == DBusError.unknownObjectName || error.name == DBusError.unknownMethodName)
        }
    }

    @Test("Values round-trip through GDBus", arguments: [
        DBusValue.byte(200), .bool(true), .bool(false), .int16(-3), .uint16(65000), .int32(-7), .uint32(4_000_000_000),
        .int64(-(1 << 40)), .uint64(1 << 63), .double(3.25), .string("héllo ✓"), .string(""),
        .objectPath("/org/a11y/atspi/accessible/12"), .signature("a(so)"),
        .array(elementSignature: "(so)", [.structure([.string(":1.5"), .objectPath("/a")]),
                                          .structure([.string(":1.6"), .objectPath("/b/c")])]),
        .array(elementSignature: "(so)", []),
        .array(elementSignature: "u", [.uint32(1), .uint32(0x8000_0000)]),
        .array(elementSignature: "i", [.int32(-1), .int32(5)]),
        .array(elementSignature: "(sss)", [.structure([.string("click"), .string("Clicks"), .string("")])]),
        .stringDictionary([("toolkit", "GTK"), ("id", "x")]),
        .dictionary(keySignature: "s", valueSignature: "v",
                    [DBusDictEntry(key: .string("a"), value: .variant(.array(elementSignature: "s", [.string("x")])))]),
        .structure([.array(elementSignature: "i", [.int32(1), .int32(2)]), .int32(1), .stringDictionary([]),
                    .int32(1), .array(elementSignature: "i", [.int32(0), .int32(0), .int32(0), .int32(0)]), .int32(2),
                    .strings([]), .int32(1), .bool(false)]),
        .variant(.string("nested")),
        .array(elementSignature: "ay", [.array(elementSignature: "y", [.byte(1), .byte(2)])]),
    ])
    func roundTrip(value: DBusValue) async throws {
        let bus = try PrivateBus(withEchoService: true)
        let connection = try await bus.connect()
        defer { connection.close() }
        let reply = try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                              interface: "org.deskgate.TestEcho", member: "Echo",
                                              args: [.variant(value)], timeout: .seconds(3))
        #expect(reply == [.variant(value)])
        guard case .variant(let inner)? = reply.first else {
            Issue.record("reply is not a variant")
            return
        }
        #expect(inner.signature == value.signature)
    }

    @Test("Several typed arguments round-trip, and many calls are in flight at once")
    func pipelining() async throws {
        let bus = try PrivateBus(withEchoService: true)
        let connection = try await bus.connect()
        defer { connection.close() }
        let args: [DBusValue] = [
            .string("s"), .stringDictionary([("k", "v")]),
            .array(elementSignature: "(so)", [.structure([.string(":1.1"), .objectPath("/x")])]),
            .array(elementSignature: "u", [.uint32(3), .uint32(9)]),
        ]
        try await withThrowingTaskGroup(of: [DBusValue].self) { group in
            for _ in 0..<500 {
                group.addTask {
                    try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                              interface: "org.deskgate.TestEcho", member: "EchoMany", args: args,
                                              timeout: .seconds(10))
                }
            }
            var count = 0
            for try await reply in group {
                #expect(reply == args)
                count += 1
            }
            #expect(count == 500)
        }
        // 20 slow calls of 300 ms each finish in about 300 ms when pipelined, not 6 s: checked
        // loosely by giving all of them a 3 s timeout, which serial calls would exceed.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    _ = try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                                  interface: "org.deskgate.TestEcho", member: "Sleep",
                                                  args: [.uint32(300)], timeout: .seconds(3))
                }
            }
            try await group.waitForAll()
        }
    }

    @Test("A call past its timeout fails with Timeout, and the connection keeps working")
    func timeout() async throws {
        let bus = try PrivateBus(withEchoService: true)
        let connection = try await bus.connect()
        defer { connection.close() }
        do {
            _ = try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                          interface: "org.deskgate.TestEcho", member: "Sleep",
                                          args: [.uint32(2000)], timeout: .milliseconds(200))
            Issue.record("expected a timeout")
        } catch {
            #expect(error.name == DBusError.timeoutName)
            #expect(error.isTimeout)
        }
        let reply = try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                              interface: "org.deskgate.TestEcho", member: "Echo",
                                              args: [.variant(.int32(5))], timeout: .seconds(2))
        #expect(reply == [.variant(.int32(5))])
    }

    @Test("Invalid arguments are refused before they reach libdbus")
    func invalidArguments() async throws {
        let bus = try PrivateBus(withEchoService: false)
        let connection = try await bus.connect()
        defer { connection.close() }
        let bad: [(String, String, [DBusValue])] = [
            ("not a path", "Ping", []),
            ("/ok", "Bad Member", []),
            ("/ok", "Ping", [.string("nul\u{0}inside")]),
            ("/ok", "Ping", [.objectPath("relative")]),
            ("/ok", "Ping", [.array(elementSignature: "s", [.int32(1)])]),
            ("/ok", "Ping", [.structure([])]),
        ]
        for (path, member, args) in bad {
            do {
                _ = try await connection.call(destination: "org.freedesktop.DBus", path: path,
                                              interface: "org.freedesktop.DBus.Peer", member: member, args: args,
                                              timeout: .seconds(1))
                Issue.record("accepted \(path) \(member) \(args)")
            } catch {
                #expect(error.name == DBusError.invalidArgsName)
            }
        }
    }

    @Test("Signals reach handlers after AddMatch")
    func signals() async throws {
        let bus = try PrivateBus(withEchoService: true)
        let connection = try await bus.connect()
        defer { connection.close() }
        let (stream, continuation) = AsyncStream<DBusSignal>.makeStream()
        let token = connection.addSignalHandler { signal in
            if signal.interface == "org.deskgate.TestEcho" { continuation.yield(signal) }
        }
        defer { connection.removeSignalHandler(token) }
        try await connection.addMatch("type='signal',interface='org.deskgate.TestEcho'")
        _ = try await connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                      interface: "org.deskgate.TestEcho", member: "Emit",
                                      args: [.string("one")], timeout: .seconds(2))
        var iterator = stream.makeAsyncIterator()
        let next = await iterator.next()
        let signal = try #require(next)
        #expect(signal.member == "Pinged")
        #expect(signal.path == "/org/deskgate/TestEcho")
        #expect(signal.args == [.string("one")])
        #expect(signal.sender?.hasPrefix(":") == true)
    }

    @Test("Closing fails pending calls with Disconnected and refuses new ones")
    func closing() async throws {
        let bus = try PrivateBus(withEchoService: true)
        let connection = try await bus.connect()
        async let slow = connection.call(destination: PrivateBus.echoServiceName, path: "/org/deskgate/TestEcho",
                                         interface: "org.deskgate.TestEcho", member: "Sleep",
                                         args: [.uint32(30_000)], timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(100))
        connection.close()
        do {
            _ = try await slow
            Issue.record("expected Disconnected")
        } catch {
            #expect((error as? DBusError)?.name == DBusError.disconnectedName)
        }
        do {
            _ = try await connection.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                                          interface: "org.freedesktop.DBus", member: "GetId", timeout: .seconds(1))
            Issue.record("expected Disconnected")
        } catch {
            #expect(error.name == DBusError.disconnectedName)
        }
    }

    @Test("Opening a bad address fails with the libdbus error")
    func badAddress() async throws {
        do {
            _ = try await DBusConnection.open(address: "unix:path=/nonexistent/deskgate-test", isBus: true)
            Issue.record("expected failure")
        } catch {
            #expect(error.name.hasPrefix("org.freedesktop.DBus.Error."))
        }
    }
}
