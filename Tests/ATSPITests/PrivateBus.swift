import DBus
import Foundation

/// A private `dbus-daemon` for tests, with an optional echo service written with GDBus (a
/// different D-Bus implementation, so round trips check our marshalling against another one).
final class PrivateBus: Sendable {
    let address: String
    private let daemon: Process
    private let services: [Process]

    static let echoServiceName = "org.deskgate.TestEcho"

    /// The echo service: `Echo(v) -> v` returns its argument; `Emit(s)` emits `Pinged(s)`;
    /// `Sleep(u ms)` answers after a delay.
    private static let echoScript = """
        import sys
        from gi.repository import Gio, GLib
        XML = '''<node><interface name="org.deskgate.TestEcho">
          <method name="Echo"><arg type="v" direction="in"/><arg type="v" direction="out"/></method>
          <method name="EchoMany"><arg type="s" direction="in"/><arg type="a{ss}" direction="in"/><arg type="a(so)" direction="in"/><arg type="au" direction="in"/>
            <arg type="s" direction="out"/><arg type="a{ss}" direction="out"/><arg type="a(so)" direction="out"/><arg type="au" direction="out"/></method>
          <method name="Emit"><arg type="s" direction="in"/></method>
          <method name="Sleep"><arg type="u" direction="in"/></method>
          <signal name="Pinged"><arg type="s"/></signal></interface></node>'''
        node = Gio.DBusNodeInfo.new_for_xml(XML)
        bus = Gio.DBusConnection.new_for_address_sync(sys.argv[1],
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        def on_call(conn, sender, path, iface, method, params, inv):
            if method == 'Echo':
                inv.return_value(params)
            elif method == 'EchoMany':
                inv.return_value(params)
            elif method == 'Emit':
                conn.emit_signal(None, path, iface, 'Pinged', GLib.Variant('(s)', (params.unpack()[0],)))
                inv.return_value(None)
            elif method == 'Sleep':
                GLib.timeout_add(params.unpack()[0], lambda: (inv.return_value(None), False)[1])
        bus.register_object('/org/deskgate/TestEcho', node.interfaces[0], on_call, None, None)
        # Own the name synchronously, so 'ready' means callers can reach it.
        bus.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'RequestName',
                      GLib.Variant('(su)', ('org.deskgate.TestEcho', 4)), GLib.VariantType('(u)'), 0, -1, None)
        print('ready', flush=True)
        GLib.MainLoop().run()
        """

    init(withEchoService: Bool) throws {
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        daemon.arguments = ["--session", "--nofork", "--print-address=1"]
        let out = Pipe()
        daemon.standardOutput = out
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        self.daemon = daemon
        address = try Self.readLine(out.fileHandleForReading)
        var services: [Process] = []
        if withEchoService {
            let echo = Process()
            echo.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            echo.arguments = ["-c", Self.echoScript, address]
            let echoOut = Pipe()
            echo.standardOutput = echoOut
            try echo.run()
            services.append(echo)
            _ = try Self.readLine(echoOut.fileHandleForReading)
        }
        self.services = services
    }

    private static func readLine(_ handle: FileHandle) throws -> String {
        var bytes: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 1)
            guard let byte = chunk.first else { throw CocoaError(.fileReadUnknown) }
            if byte == UInt8(ascii: "\n") { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func connect() async throws -> DBusConnection {
        try await DBusConnection.open(address: address, isBus: true, name: "test")
    }

    deinit {
        // SIGKILL: the children inherit a signal mask in which SIGTERM may be blocked.
        for process in services + [daemon] where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// org.a11y.Status on the session bus.
enum DBusSessionHelper {
    static func open() async throws -> DBusConnection { try await DBusConnection.openSessionBus() }

    static func isEnabled(on session: DBusConnection) async throws -> Bool? {
        let reply = try await session.call(destination: "org.a11y.Bus", path: "/org/a11y/bus",
                                           interface: "org.freedesktop.DBus.Properties", member: "Get",
                                           args: [.string("org.a11y.Status"), .string("IsEnabled")], timeout: .seconds(2))
        return reply.first?.boolValue
    }

    static func setIsEnabled(_ value: Bool, on session: DBusConnection) async throws {
        _ = try await session.call(destination: "org.a11y.Bus", path: "/org/a11y/bus",
                                   interface: "org.freedesktop.DBus.Properties", member: "Set",
                                   args: [.string("org.a11y.Status"), .string("IsEnabled"), .variant(.bool(value))],
                                   timeout: .seconds(2))
    }
}
