import Glibc

/// What `browser.navigate` did.
public struct NavigateResult: Sendable, Hashable {
    public var url: String
    public var origin: String
    /// `firefox` or `chromium`.
    public var browser: String
}

/// How `browser.navigate` hands a URL to a running browser: the pure rules, tested without a
/// desktop.
///
/// Neither browser lets an address bar be typed into through accessibility (Chromium's has no
/// EditableText; Gecko's ATK bridge ignores EditableText calls on text fields), so the URL goes
/// through the browser's own documented command line, run against the running instance (the
/// same profile), which opens it in a new tab: `firefox --profile P --new-tab URL`,
/// `chromium --user-data-dir=D URL`. Only http and https URLs are accepted: `file:` would let
/// an agent open local files in the browser and read them through the tree, `javascript:` and
/// `data:` would run code it wrote.
public enum BrowserLaunch {
    public enum Kind: String, Sendable {
        case firefox, chromium
    }

    /// The browser an executable is, by its file name.
    public static func kind(executable: String) -> Kind? {
        let base = executable.split(separator: "/").last.map(String.init) ?? executable
        switch base {
        case "firefox", "firefox-esr", "firefox-bin": return .firefox
        case "chromium", "chromium-browser", "chrome", "google-chrome", "google-chrome-stable": return .chromium
        default: return nil
        }
    }

    /// The URL, checked, and its origin (`scheme://host[:port]`, the port only when it is not
    /// the scheme's default).
    public static func checked(url: String) throws(AccessibilityError) -> (url: String, origin: String) {
        guard url.utf8.count <= 8192 else { throw .invalidArgument(field: "url", "longer than 8192 bytes") }
        guard !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            throw .invalidArgument(field: "url", "contains spaces or control characters")
        }
        guard let schemeEnd = url.firstRange(of: "://") else { throw .invalidArgument(field: "url", "must be an absolute http or https URL") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw .invalidArgument(field: "url", "only http and https URLs can be loaded (not \(Text.quoted(scheme)))")
        }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else {
            throw .invalidArgument(field: "url", "must not carry a user name or password (user@host)")
        }
        guard let origin = WebOrigin.origin(scheme: scheme, authority: String(authority)) else {
            throw .invalidArgument(field: "url", "has no valid host")
        }
        return (url, origin)
    }

    /// The argument vector that hands `url` to the running browser whose command line is
    /// `cmdline`: its executable, the switches that name its profile (and `--no-sandbox`, which
    /// Chromium needs as root even to hand over a URL), then the URL. Chromium rewrites its
    /// command line as its process title, one string with the arguments joined by spaces: that
    /// string is split at its spaces (a profile path with a space in it is then not found, and
    /// ``AccessibilityService/navigate(_:url:)`` refuses rather than start another browser).
    public static func arguments(kind: Kind, executable: String, cmdline: [String], url: String) throws(AccessibilityError)
        -> [String]
    {
        var cmdline = cmdline
        if kind == .chromium, cmdline.count == 1, cmdline[0].contains(" ") {
            cmdline = cmdline[0].split(separator: " ").map(String.init)
        }
        var args = [executable]
        var index = 1
        switch kind {
        case .firefox:
            while index < cmdline.count {
                let arg = cmdline[index]
                let bare = arg.hasPrefix("--") ? String(arg.dropFirst()) : arg
                if bare == "-no-remote" {
                    throw .notSupported("this Firefox was started with --no-remote: it accepts no URL from another process")
                }
                if bare == "-profile" || bare == "-P", index + 1 < cmdline.count {
                    args += [arg, cmdline[index + 1]]
                    index += 1
                }
                index += 1
            }
            args += ["--new-tab", url]
        case .chromium:
            while index < cmdline.count {
                let arg = cmdline[index]
                if arg.hasPrefix("--user-data-dir=") || arg == "--no-sandbox" {
                    args.append(arg)
                } else if arg == "--user-data-dir", index + 1 < cmdline.count {
                    args.append("--user-data-dir=" + cmdline[index + 1])
                    index += 1
                }
                index += 1
            }
            args.append(url)
        }
        return args
    }

    /// The variables that find a browser's display, session bus and profile.
    static let keptVariables: [String] = ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS",
                                          "XDG_RUNTIME_DIR", "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
                                          "LANG", "MOZ_ENABLE_WAYLAND", "CHROME_CONFIG_HOME"]

    /// The browser's own environment, cut to ``keptVariables``; a variable it does not show
    /// comes from `fallback` (the daemon's own, of the same session: Chromium overwrites its
    /// environment block with its process title, so `/proc/PID/environ` may hold none).
    public static func environment(from environ: [String], fallback: [String] = []) -> [String] {
        func value(_ name: String, in entries: [String]) -> String? {
            entries.first { $0.hasPrefix(name + "=") }
        }
        return keptVariables.compactMap { value($0, in: environ) ?? value($0, in: fallback) } + ["PATH=/usr/bin:/bin"]
    }

    /// The daemon's own values of ``keptVariables``.
    static func ownEnvironment() -> [String] {
        keptVariables.compactMap { name in
            guard let raw = getenv(name), raw.pointee != 0 else { return nil }
            return name + "=" + String(cString: raw)
        }
    }
}

extension ProcessFacts {
    /// The NUL-separated strings of `/proc/PID/<file>` (cmdline, environ), or nil.
    static func strings(of pid: Int32, file: String) -> [String]? {
        let fd = open("/proc/\(pid)/\(file)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 1 << 20 {
            let count = read(fd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return bytes.split(separator: 0, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension AccessibilityService {
    /// `browser.navigate`: opens `url` in a new tab of the browser `target` names, through the
    /// browser's own command line (``BrowserLaunch``), after checking the app is still the
    /// process decided on.
    public func navigate(_ target: ResolvedTarget, url: String) async throws(AccessibilityError) -> NavigateResult {
        let (url, origin) = try BrowserLaunch.checked(url: url)
        let (app, _) = try await confirm(target)
        guard let exe = app.exe, let kind = BrowserLaunch.kind(executable: exe) else {
            throw .notSupported("\(Text.quoted(app.name)) is not a browser deskgate can hand a URL to (Firefox or Chromium)")
        }
        guard let cmdline = ProcessFacts.strings(of: app.pid, file: "cmdline"),
              let environ = ProcessFacts.strings(of: app.pid, file: "environ")
        else { throw .appGone(app: app.id) }
        // Read after the reads of /proc: the pid still names the process decided on.
        guard ProcessFacts.startTime(of: app.pid) == app.startTime else { throw .appGone(app: app.id) }
        let argv = try BrowserLaunch.arguments(kind: kind, executable: exe, cmdline: cmdline, url: url)
        // A profile that is not there would start a second browser instead of reaching this one.
        let profileSwitch = "--user-data-dir="
        for profile in argv.compactMap({ $0.hasPrefix(profileSwitch) ? String($0.dropFirst(profileSwitch.count)) : nil }) {
            var info = stat()
            guard stat(profile, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                throw .notSupported("cannot tell the profile directory of this \(kind.rawValue) from its command line")
            }
        }
        let outcome = await ChildProcess.run(argv, environment: BrowserLaunch.environment(from: environ,
                                                                                          fallback: BrowserLaunch.ownEnvironment()),
                                             timeoutMs: Int32(clamping: config.actionTimeout.components.seconds * 1000 * 5))
        guard outcome == .exited(0) else {
            throw .unexpected("\(kind.rawValue) did not take the URL (\(outcome))")
        }
        return NavigateResult(url: url, origin: origin, browser: kind.rawValue)
    }
}

/// The origin of a URL, as origin rules match it: `scheme://host[:port]`, lower case, the
/// default port of http and https dropped.
public enum WebOrigin {
    /// Nil for URLs without `://` or without a host (`about:blank`, `data:`); `file://` for local files.
    public static func of(url: String) -> String? {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else {
            return nil
        }
        var authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if scheme == "file" { return "file://" }
        return origin(scheme: scheme, authority: String(authority))
    }

    /// `scheme://host[:port]` of an authority, lower case, the default port dropped; nil when
    /// the host is empty or the port is not a number.
    static func origin(scheme: String, authority: String) -> String? {
        var host = authority
        var port: String?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { port = String(after.dropFirst()) } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = String(authority[authority.index(after: colon)...])
        }
        guard !host.isEmpty else { return nil }
        let base = "\(scheme)://\(host.lowercased())"
        guard let port, !port.isEmpty else { return base }
        guard port.allSatisfy({ $0.isASCII && $0.isNumber }), port.count <= 5, let number = Int(port), number <= 65535 else {
            return nil
        }
        let isDefault = (scheme == "http" && number == 80) || (scheme == "https" && number == 443)
        return isDefault ? base : "\(base):\(number)"
    }

}
