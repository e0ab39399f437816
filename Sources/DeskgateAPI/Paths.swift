#if canImport(Glibc)
import Glibc
#endif

/// Where deskgate keeps its socket and files, following the XDG base directory spec.
public enum DeskgatePaths {
    /// The runtime directory: `$XDG_RUNTIME_DIR`, else `/run/user/UID` if it exists, else `/tmp/deskgate-UID`
    /// (the last one is deskgate's own directory, so the socket goes directly inside it).
    public static func runtimeBase(environment: [String: String]) -> (path: String, ownDirectory: Bool) {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return (runtime, false) }
        let uid = getuid()
        let runUser = "/run/user/\(uid)"
        var st = stat()
        if stat(runUser, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { return (runUser, false) }
        return ("/tmp/deskgate-\(uid)", true)
    }

    /// The socket's directory: `RUNTIME/deskgate`, or `/tmp/deskgate-UID` without a runtime dir.
    public static func socketDirectory(environment: [String: String]) -> String {
        let base = runtimeBase(environment: environment)
        return base.ownDirectory ? base.path : base.path + "/deskgate"
    }

    /// The daemon's default socket path.
    public static func defaultSocket(environment: [String: String]) -> String {
        socketDirectory(environment: environment) + "/deskgate.sock"
    }

    /// The socket a client uses: `DESKGATE_SOCKET`, else the default.
    public static func clientSocket(environment: [String: String]) -> String {
        if let explicit = environment["DESKGATE_SOCKET"], !explicit.isEmpty { return explicit }
        return defaultSocket(environment: environment)
    }

    /// `$XDG_STATE_HOME/deskgate` (default `~/.local/state/deskgate`).
    public static func stateDirectory(environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty { return state + "/deskgate" }
        return home(environment) + "/.local/state/deskgate"
    }

    /// `$XDG_CONFIG_HOME/deskgate` (default `~/.config/deskgate`).
    public static func configDirectory(environment: [String: String]) -> String {
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty { return config + "/deskgate" }
        return home(environment) + "/.config/deskgate"
    }

    public static let systemPolicyDirectory = "/etc/deskgate/policy.d"

    private static func home(_ environment: [String: String]) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { return String(cString: dir) }
        return "/tmp"
    }
}

/// The process environment as a dictionary.
public func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") {
            result[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        pointer += 1
    }
    return result
}
