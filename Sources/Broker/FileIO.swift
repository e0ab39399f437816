import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of file contents, as lowercase hex.
enum SHA256Hex {
    static func digest(_ bytes: [UInt8]) -> String {
        Text.hex(SHA256.hash(data: bytes))
    }
}

/// Small POSIX file helpers: reading with a clear "missing" case, and atomic private writes.
enum FileIO {
    struct Failure: Error, CustomStringConvertible {
        var path: String
        var operation: String
        var errno: Int32
        var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
    }

    /// The file's bytes, nil when it does not exist. Refuses files larger than `limit`.
    static func read(_ path: String, limit: Int = TOMLParser.maxBytes) throws(Failure) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw Failure(path: path, operation: "open", errno: errno)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > limit { throw Failure(path: path, operation: "read (file too large)", errno: EFBIG) }
        }
        return bytes
    }

    /// `*.toml` files in a directory, sorted; nil when the directory does not exist.
    static func tomlFiles(in directory: String) throws(Failure) -> [String]? {
        guard let dir = opendir(directory) else {
            if errno == ENOENT { return nil }
            throw Failure(path: directory, operation: "opendir", errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name.hasSuffix(".toml"), !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().map { directory.hasSuffix("/") ? directory + $0 : directory + "/" + $0 }
    }

    /// Creates `directory` (and parents) if needed and makes it mode 0700.
    static func ensurePrivateDirectory(_ directory: String) throws(Failure) {
        var path = ""
        for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
            path += "/" + component
            if mkdir(path, 0o700) != 0, errno != EEXIST { throw Failure(path: path, operation: "mkdir", errno: errno) }
        }
        if chmod(directory, 0o700) != 0 { throw Failure(path: directory, operation: "chmod", errno: errno) }
    }

    /// Writes `bytes` to `path` atomically: a 0600 temp file in the same 0700 directory, fsync,
    /// rename over the target, fsync the directory. A crash leaves the old or the new file, never
    /// a mix.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(Failure) {
        let directory = Text.deletingLastPathComponent(path)
        try ensurePrivateDirectory(directory)
        let temp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { throw Failure(path: temp, operation: "create", errno: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temp)
                throw Failure(path: temp, operation: "write", errno: code)
            }
            written += n
        }
        if fchmod(fd, 0o600) != 0 || fsync(fd) != 0 {
            let code = errno
            close(fd)
            unlink(temp)
            throw Failure(path: temp, operation: "fsync", errno: code)
        }
        close(fd)
        if rename(temp, path) != 0 {
            let code = errno
            unlink(temp)
            throw Failure(path: path, operation: "rename", errno: code)
        }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// The canonical path (symlinks resolved), or nil when it does not resolve.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Moves a file aside (keeping it for inspection) rather than deleting it.
    static func moveAside(_ path: String, suffix: String) -> String? {
        let target = "\(path).\(suffix)"
        return rename(path, target) == 0 ? target : nil
    }
}
