#if canImport(Glibc)
import Glibc
#endif

/// A small deterministic generator, so a fuzz run replays exactly from its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The knobs of the fuzz tests, from the environment.
public enum FuzzSettings {
    /// `DESKGATE_FUZZ_SEED` (decimal, or hex with `0x`), else a fresh random seed. Print it:
    /// it is what a failure is replayed from.
    public static var seed: UInt64 {
        if let raw = environment("DESKGATE_FUZZ_SEED") {
            let text = raw.lowercased()
            if text.hasPrefix("0x"), let value = UInt64(text.dropFirst(2), radix: 16) { return value }
            if let value = UInt64(text) { return value }
        }
        var system = SystemRandomNumberGenerator()
        return system.next()
    }

    /// `DESKGATE_FUZZ_ITERATIONS`, else `defaultValue` (short enough for `make test`).
    public static func iterations(default defaultValue: Int) -> Int {
        environment("DESKGATE_FUZZ_ITERATIONS").flatMap { Int($0) } ?? defaultValue
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// Bytes as readable text for a failure message: printable ASCII as is, the rest as `\xNN`,
/// cut after `limit` characters.
public func escapedBytes(_ bytes: some Collection<UInt8>, limit: Int = 400) -> String {
    var out = ""
    for byte in bytes {
        if out.count >= limit {
            out += "…(\(bytes.count) bytes)"
            break
        }
        switch byte {
        case 0x0A: out += "\\n"
        case 0x0D: out += "\\r"
        case 0x5C: out += "\\\\"
        case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(byte))
        default: out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
    }
    return out
}
