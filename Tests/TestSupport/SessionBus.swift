#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A private session bus (`dbus-daemon --session`) for a test whose session services (a
/// screensaver, a keyring) must not be shared with other tests; killed by ``stop()``.
public final class SessionBus: @unchecked Sendable {
    private let process = Process()
    /// The bus's address, for `DBUS_SESSION_BUS_ADDRESS`.
    public let address: String

    public init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        process.arguments = ["--session", "--nofork", "--print-address=1"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var bytes: [UInt8] = []
        while let byte = out.fileHandleForReading.readData(ofLength: 1).first, byte != UInt8(ascii: "\n") { bytes.append(byte) }
        address = String(decoding: bytes, as: UTF8.self)
    }

    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
