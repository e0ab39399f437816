import Glibc

/// A failed system call on an audit file: the operation, the path and the errno.
struct POSIXFailure: Error, CustomStringConvertible {
    let operation: String
    let path: String
    let code: Int32

    init(_ operation: String, _ path: String, _ code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
}

/// Thin wrappers over the system calls the audit log needs. Everything here blocks, so it runs
/// on the log's own dispatch queues or at start-up, never on the cooperative pool.
enum POSIXFile {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates `path` as a directory with mode 0700 if missing; fixes the mode if it exists and is
    /// ours; refuses a directory owned by someone else (it could be read or rewritten by them).
    static func ensurePrivateDirectory(_ path: String) throws {
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            // Create missing parents, then retry once.
            let parent = parentDirectory(of: path)
            if errno == ENOENT, parent != path, !parent.isEmpty {
                try ensureDirectoryTree(parent)
                if mkdir(path, 0o700) != 0, errno != EEXIST { throw POSIXFailure("mkdir", path) }
            } else {
                throw POSIXFailure("mkdir", path)
            }
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { throw POSIXFailure("stat", path) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw POSIXFailure("not a directory:", path, ENOTDIR) }
        guard st.st_uid == geteuid() else { throw POSIXFailure("owned by another user:", path, EPERM) }
        if st.st_mode & 0o777 != 0o700, chmod(path, 0o700) != 0 { throw POSIXFailure("chmod", path) }
    }

    /// `mkdir -p` with mode 0700 for the parts it creates.
    static func ensureDirectoryTree(_ path: String) throws {
        if exists(path) { return }
        let parent = parentDirectory(of: path)
        if parent != path, !parent.isEmpty { try ensureDirectoryTree(parent) }
        if mkdir(path, 0o700) != 0, errno != EEXIST { throw POSIXFailure("mkdir", path) }
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// The canonical absolute path (symlinks resolved), or nil if it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The whole file, or the first `limit` bytes of it.
    static func read(_ path: String, limit: Int? = nil) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXFailure("open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw POSIXFailure("stat", path) }
        var size = Int(st.st_size)
        if let limit { size = min(size, limit) }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(fd, buffer.baseAddress! + done, size - done)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXFailure("read", path)
            }
            if n == 0 { break }
            done += n
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// Writes every byte, retrying short writes, optionally in chunks of `chunk` bytes.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String, chunk: Int? = nil) throws {
        var done = 0
        try bytes.withUnsafeBytes { buffer in
            while done < buffer.count {
                let length = min(buffer.count - done, chunk ?? Int.max)
                let n = write(fd, buffer.baseAddress! + done, length)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw POSIXFailure("write", path)
                }
                if n == 0 { throw POSIXFailure("write", path, EIO) }
                done += n
            }
        }
    }

    static func dataSync(_ fd: Int32, path: String) throws {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw POSIXFailure("fdatasync", path)
        }
    }

    /// Makes a new or removed directory entry durable.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXFailure("open", path) }
        defer { close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw POSIXFailure("fsync", path)
        }
    }

    /// Creates a new file with mode 0600, writes `bytes`, syncs file and directory.
    static func createFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXFailure("create", path) }
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
        try dataSync(fd, path: path)
        try syncDirectory(parentDirectory(of: path))
    }

    /// Which file a path or descriptor names: device and inode.
    struct Identity: Equatable, Sendable {
        let device: UInt64
        let inode: UInt64
        init(_ st: stat) {
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }
    }

    static func identity(_ path: String) throws -> Identity {
        var st = stat()
        guard stat(path, &st) == 0 else { throw POSIXFailure("stat", path) }
        return Identity(st)
    }

    static func size(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    /// Names in a directory (no `.`/`..`).
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw POSIXFailure("opendir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
