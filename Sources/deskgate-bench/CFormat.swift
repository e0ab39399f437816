#if canImport(Glibc)
import Glibc
#endif

/// printf-style formatting through the C library, for the benchmark summaries (they link
/// FoundationEssentials only, and `String(format:)` needs full Foundation).
func cFormat(_ format: String, _ arguments: any CVarArg...) -> String {
    var size = 256
    while true {
        var buffer = [CChar](repeating: 0, count: size)
        let written = withVaList(arguments) { vsnprintf(&buffer, size, format, $0) }
        if written < 0 { return format }
        if Int(written) < size { return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        size = Int(written) + 1
    }
}
